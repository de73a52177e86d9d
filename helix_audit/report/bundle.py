"""The evidence bundle: every report format in one folder, plus SHA256SUMS over all of it.

``write_bundle`` renders each requested format from the same AuditResult and writes it atomically;
evidence captures (``evidence/``, one extra pass over the inputs) are written before the HTML that
links them; SHA256SUMS covers every file (``sha256sum -c SHA256SUMS`` verifies it from inside the folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from helix_audit.digest import file_sha256
from helix_audit.forkpipe import fork_child, outcome, reap, receive, send
from helix_audit.gcpause import paused_gc
from helix_audit.heap import roomy_heap, trim
from helix_audit.report.atomic import atomic_write_text
from helix_audit.report.json_report import write_json  # every format but evidence needs it

if TYPE_CHECKING:  # pragma: no cover
    from helix_audit.model import AuditResult

SUMS = "SHA256SUMS"
#: A file's SHA-256 taken while it was written, with the (size, mtime, inode) it had then.
Known = dict[Path, tuple[str, tuple[int, int, int]]]
Writer = Callable[["AuditResult", Path, Known], list[Path]]


# The other writers import their module when they run: `--format json` loads neither jinja2 nor
# the evidence machinery (~40 ms of start-up).


def _remember(known: Known, digests: dict[Path, str]) -> None:
    """Digests a writer took as it wrote, with each file's signature now (see ``_digest``)."""
    known.update((path, (digest, _signature(path))) for path, digest in digests.items())


def _json(result: AuditResult, out: Path, known: Known) -> list[Path]:
    digests: dict[Path, str] = {}
    path = write_json(result, out / "report.json", digests)
    _remember(known, digests)
    return [path]


def _csv(result: AuditResult, out: Path, known: Known) -> list[Path]:
    from helix_audit.report.csv_report import write_csvs

    digests: dict[Path, str] = {}
    paths = write_csvs(result, out, digests)
    _remember(known, digests)
    return paths


def _sarif(result: AuditResult, out: Path, known: Known) -> list[Path]:
    from helix_audit.report.sarif import write_sarif

    digests: dict[Path, str] = {}
    path = write_sarif(result, out / "report.sarif", digests)
    _remember(known, digests)
    return [path]


def _junit(result: AuditResult, out: Path, known: Known) -> list[Path]:
    from helix_audit.report.junit import write_junit

    return [write_junit(result, out / "junit.xml")]


def _evidence(result: AuditResult, out: Path, known: Known) -> list[Path]:
    """evidence/<finding>.pcap(ng): one extra pass over the inputs; skipped when they are gone
    (re-rendering a bundle from its report.json on another machine)."""
    inputs = [Path(i.path) for i in result.inputs]
    if not result.findings or not all(p.is_file() for p in inputs):
        return []
    from helix_audit.report.evidence import write_evidence

    digests: dict[Path, str] = {}
    found = write_evidence(result.findings, result.flows, inputs, out / "evidence", digests=digests)
    _remember(known, digests)
    return list(found.values())


def _html(result: AuditResult, out: Path, known: Known) -> list[Path]:
    from helix_audit.report.html import write_html

    return [write_html(result, out / "report.html", out / "evidence")]


#: Format name -> writer; the order is the order files are written (HTML last but for the sums).
WRITERS: dict[str, Writer] = {
    "json": _json,
    "csv": _csv,
    "sarif": _sarif,
    "junit": _junit,
    "evidence": _evidence,
    "html": _html,
}
FORMATS: tuple[str, ...] = tuple(WRITERS)
EXTERNAL_FORMATS: tuple[str, ...] = ()


def _sum_line(digest: str, name: str) -> str:
    """One GNU sha256sum line; names with a backslash or newline use its escaped form."""
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def _signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def _digest(path: Path, known: Known) -> str:
    """The digest taken while ``path`` was written if it is still that file, else read and hash it."""
    digest, signature = known.get(path, ("", (-1, -1, -1)))
    return digest if digest and _signature(path) == signature else file_sha256(path)


def write_sums(out_dir: Path, known: Known | None = None) -> Path:
    """SHA256SUMS over every regular file under ``out_dir`` except itself and temp files.

    ``known``: digests taken as files were written (report.json: 100 MB not read back)."""
    known = known or {}
    files = sorted(
        p
        for p in out_dir.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and p.name != SUMS
        and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )
    lines = [_sum_line(_digest(p, known), p.relative_to(out_dir).as_posix()) for p in files]
    return atomic_write_text(out_dir / SUMS, "".join(lines), newline="")


def write_bundle(
    result: AuditResult, out_dir: str | Path, formats: Iterable[str] | None = None, jobs: int = 1
) -> list[Path]:
    """Write the requested formats (default: all of ``FORMATS``) and SHA256SUMS into ``out_dir``.

    Returns the files written, SHA256SUMS last. Unknown format names raise ``ValueError`` naming them.
    ``jobs`` > 1: the evidence captures (a pass over the inputs, most of a bundle's time) are
    written by a forked process while this one writes the other formats; the files are the same.
    """
    wanted = list(FORMATS) if formats is None else list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in WRITERS and f not in EXTERNAL_FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    known: Known = {}
    # The formats build many short-lived objects and no cycles, and buffers of a few MiB (heap.py).
    with paused_gc(), roomy_heap():
        aside = _Aside(ASIDE, result, out) if jobs > 1 and _worth_aside(result, wanted) else None
        try:
            for name in FORMATS:
                if name not in wanted:
                    continue
                if aside is not None and name == aside.name:
                    written += aside.join(known)  # before the HTML, which links what it wrote
                    continue
                written += WRITERS[name](result, out, known)
                trim()  # the next format's peak does not come on top of this one's freed buffers
        except BaseException:
            if aside is not None:
                aside.stop()
            raise
    written.append(write_sums(out, known))
    return written


#: The format a forked process writes when ``jobs`` > 1: the evidence pass reads the inputs again.
ASIDE = "evidence"


def _worth_aside(result: AuditResult, wanted: list[str]) -> bool:
    """A fork pays when there are evidence captures to write and other formats to write meanwhile."""
    others = [f for f in wanted if f not in (ASIDE, "html")]
    return ASIDE in wanted and bool(others) and bool(result.findings) and hasattr(os, "fork")


class _Aside:
    """One format written by a forked process (it sees the result as this process has it: no
    pickling); its files and their digests come back through a pipe."""

    def __init__(self, name: str, result: AuditResult, out: Path) -> None:
        self.name = name
        self._child = fork_child(_aside_child, name, result, out)

    def join(self, known: Known) -> list[Path]:
        """The files it wrote (its digests go into ``known``); its error is raised here."""
        paths, theirs = receive(self._child.conn, f"the {self.name} writer")
        reap(self._child)
        known.update(theirs)
        return paths

    def stop(self) -> None:
        """This process failed: end the other one now."""
        reap(self._child, patience=0)


def _aside_child(name: str, result: AuditResult, out: Path, conn: Connection) -> None:
    known: Known = {}
    blob, _ = outcome(lambda: (WRITERS[name](result, out, known), known))
    send(conn, blob)
    conn.close()
