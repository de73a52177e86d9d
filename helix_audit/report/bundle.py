"""The evidence bundle: every report format in one folder, plus SHA256SUMS over all of it.

``write_bundle`` renders each requested format from the same AuditResult and writes it atomically;
evidence captures (``evidence/``, one extra pass over the inputs) are written before the HTML that
links them; SHA256SUMS covers every file (``sha256sum -c SHA256SUMS`` verifies it from inside the folder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from helix_audit.gcpause import paused_gc
from helix_audit.model import AuditResult
from helix_audit.report.atomic import atomic_write_text
from helix_audit.report.csv_report import write_csvs
from helix_audit.report.evidence import write_evidence
from helix_audit.report.html import write_html
from helix_audit.report.json_report import write_json
from helix_audit.report.junit import write_junit
from helix_audit.report.sarif import write_sarif

SUMS = "SHA256SUMS"
Writer = Callable[[AuditResult, Path], list[Path]]


def _evidence(result: AuditResult, out: Path) -> list[Path]:
    """evidence/<finding>.pcap(ng): one extra pass over the inputs; skipped when they are gone
    (re-rendering a bundle from its report.json on another machine)."""
    inputs = [Path(i.path) for i in result.inputs]
    if not result.findings or not all(p.is_file() for p in inputs):
        return []
    return list(write_evidence(result.findings, result.flows, inputs, out / "evidence").values())


#: Format name -> writer; the order is the order files are written (HTML last but for the sums).
WRITERS: dict[str, Writer] = {
    "json": lambda r, d: [write_json(r, d / "report.json")],
    "csv": write_csvs,
    "sarif": lambda r, d: [write_sarif(r, d / "report.sarif")],
    "junit": lambda r, d: [write_junit(r, d / "junit.xml")],
    "evidence": _evidence,
    "html": lambda r, d: [write_html(r, d / "report.html", d / "evidence")],
}
FORMATS: tuple[str, ...] = tuple(WRITERS)
EXTERNAL_FORMATS: tuple[str, ...] = ()


def _sum_line(digest: str, name: str) -> str:
    """One GNU sha256sum line; names with a backslash or newline use its escaped form."""
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sums(out_dir: Path) -> Path:
    """SHA256SUMS over every regular file under ``out_dir`` except itself and temp files."""
    files = sorted(
        p
        for p in out_dir.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.name != SUMS
        and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )
    lines = [_sum_line(file_sha256(p), p.relative_to(out_dir).as_posix()) for p in files]
    return atomic_write_text(out_dir / SUMS, "".join(lines), newline="")


def write_bundle(
    result: AuditResult, out_dir: str | Path, formats: Iterable[str] | None = None
) -> list[Path]:
    """Write the requested formats (default: all of ``FORMATS``) and SHA256SUMS into ``out_dir``.

    Returns the files written, SHA256SUMS last. Unknown format names raise ``ValueError`` naming them.
    """
    wanted = list(FORMATS) if formats is None else list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in WRITERS and f not in EXTERNAL_FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with paused_gc():  # the formats build many short-lived objects and no cycles
        for name in FORMATS:
            if name in wanted:
                written += WRITERS[name](result, out)
    written.append(write_sums(out))
    return written
