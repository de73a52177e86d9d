"""The command line: parse options, call the library, map errors to exit codes. Nothing else.

Exit codes (documented in README.md and ``helix-audit --help``):
  0  compliant: no finding at or above --fail-on
  1  findings at or above --fail-on
  2  usage error or unusable input (one line naming the file and why)
  3  inconclusive: no packets, or nothing of the site seen
 70  internal error (a bug: one line; set HELIX_AUDIT_DEBUG=1 for the traceback)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from enum import IntEnum
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .cli_live import capture_command, live_inputs, live_options
from .errors import HelixAuditError
from .gcpause import paused_gc
from .heap import bound_heap

if TYPE_CHECKING:  # pragma: no cover
    from .model import AuditResult, InputInfo, Severity

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    COMPLIANT = 0
    FINDINGS = 1
    USAGE = 2
    INCONCLUSIVE = 3
    INTERNAL = 70


#: ``model.Severity``'s values, lowest first (tests/cli checks they match): spelled out so that
#: parsing the command line imports neither the model nor pandas.
SEVERITIES = ["info", "low", "medium", "high", "critical"]


@contextmanager
def _heavy_imports() -> Iterator[None]:
    """Import numpy/pandas/numba and the pipeline with the cyclic collector paused, then freeze.

    Those imports allocate ~10^5 objects that live as long as the process and form no garbage;
    the collections they trigger walked them again and again: ~0.1 s of a 0.5 s start-up."""
    with paused_gc(freeze=True):
        yield


def _guard(fn: F) -> F:
    """Turn library errors into one line on stderr and a documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HelixAuditError as exc:
            click.echo(f"helix-audit: {exc}", err=True)
            sys.exit(ExitCode.USAGE)
        except KeyboardInterrupt:
            click.echo("helix-audit: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except (click.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line, never a traceback by default
            if os.environ.get("HELIX_AUDIT_DEBUG"):
                raise
            what = f"{type(exc).__name__}: {exc}"
            click.echo(f"helix-audit: internal error: {what} (set HELIX_AUDIT_DEBUG=1 for details)", err=True)
            sys.exit(ExitCode.INTERNAL)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="helix-audit")
def main() -> None:
    """Audit packet captures against Helix's documented network requirements.

    \b
    Exit codes: 0 compliant, 1 findings at or above --fail-on, 2 usage error or
    unusable input, 3 inconclusive (no packets, nothing of the site seen), 70 internal error.
    """
    bound_heap()


def exit_code_for(result: AuditResult, fail_on: Severity) -> ExitCode:
    """The audit's exit code: findings first, then inconclusive, else compliant."""
    if any(f.severity.rank >= fail_on.rank for f in result.findings):
        return ExitCode.FINDINGS
    if result.packets == 0 or not result.roles:
        return ExitCode.INCONCLUSIVE
    return ExitCode.COMPLIANT


def engine_options(fn: F) -> F:
    """--engine, --tls-keylog, --decode-as: shared by audit, extract and verify."""
    fn = click.option(
        "--decode-as",
        "decode_as",
        multiple=True,
        metavar="RULE",
        help="tshark decode-as rule, e.g. 'tcp.port==8053,dns' (tshark engine).",
    )(fn)
    fn = click.option(
        "--tls-keylog",
        type=click.Path(path_type=Path),
        help="SSLKEYLOGFILE to decrypt TLS (tshark engine): shows wss:// paths.",
    )(fn)
    return click.option(
        "--engine",
        type=click.Choice(["native", "tshark"]),
        default="native",
        show_default=True,
        help="Who reads the packets' contents.",
    )(fn)


def scale_options(fn: F) -> F:
    """--jobs and --dask: shared by audit and extract (native engine)."""
    fn = click.option(
        "--dask",
        "dask_address",
        metavar="ADDRESS",
        help="Run the partitions on a dask.distributed cluster (e.g. tcp://scheduler:8786); "
        "workers need helix-audit installed and the same capture paths. See docs/scale-out.md.",
    )(fn)
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Worker processes: over files and byte ranges of large files, and for audit the "
        "evidence captures beside the other report formats (same result as 1).",
    )(fn)


@contextmanager
def _progress(paths: tuple[Path, ...], quiet: bool) -> Iterator[Any]:
    """A progress bar on stderr while the block runs (none when quiet or not a terminal)."""
    from .progress import bar_for

    bar = bar_for(paths, quiet)
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


@contextmanager
def _tshark_warnings() -> Iterator[None]:
    """tshark's complaints about a damaged file: one warning line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if type(w.message).__name__ == "TsharkWarning":
            click.echo(f"helix-audit: warning: {w.message}", err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--site", type=click.Path(path_type=Path), help="Site profile (YAML).")
@click.option(
    "--rules",
    "rules",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Rules file or directory (repeatable). Default: the bundled documented tables.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("helix-audit-report"),
    show_default=True,
    help="Directory for the report bundle.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Exit 1 when a finding at or above this severity exists.",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["json", "html", "csv", "sarif", "junit", "evidence"]),
    help="Write only these formats (repeatable). Default: all.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@engine_options
@scale_options
@live_options
@_guard
def audit(
    paths: tuple[Path, ...],
    site: Path | None,
    rules: tuple[Path, ...],
    out: Path,
    fail_on: str,
    formats: tuple[str, ...],
    quiet: bool,
    engine: str,
    tls_keylog: Path | None,
    decode_as: tuple[str, ...],
    jobs: int,
    dask_address: str | None,
    **live: Any,
) -> None:
    """Audit PATH... (pcap, pcapng, gzip, or directories of them), or a --live capture, and write a
    report bundle."""
    paths = live_inputs(paths, out, quiet, **live)  # with --live: captures into OUT/capture/ first
    with _heavy_imports():
        from .model import Severity
        from .pipeline import audit as run_audit
        from .report.bundle import write_bundle

    command = "helix-audit " + shlex.join(sys.argv[1:])
    with _tshark_warnings(), _progress(paths, quiet) as bar:
        result = run_audit(
            list(paths),
            site=site,
            rules=list(rules) or None,
            command=command,
            engine=engine,
            keylog=tls_keylog,
            decode_as=decode_as,
            progress=bar,
            jobs=jobs,
            dask=dask_address,
            freeze_gc=True,  # the process ends after the report
        )
    # --jobs: the evidence pass gets a process of its own (not under --dask: a fork would copy the
    # Dask client's threads half-way through whatever they do)
    bundle_jobs = jobs if dask_address is None else 1
    written = write_bundle(result, out, formats=list(formats) or None, jobs=bundle_jobs)
    _warn_inputs(result.inputs)
    code = exit_code_for(result, Severity.parse(fail_on))
    if not quiet:
        _summary(result, out, written, code)
    sys.exit(code)


def _summary(result: AuditResult, out: Path, written: list[Path], code: ExitCode) -> None:
    counts: dict[str, int] = {}
    for f in result.findings:
        counts[f.severity.value] = counts.get(f.severity.value, 0) + 1
    sev = ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if s in counts) or "none"
    verdict = {
        ExitCode.COMPLIANT: "compliant",
        ExitCode.FINDINGS: "findings",
        ExitCode.INCONCLUSIVE: "inconclusive",
    }.get(code, "")
    click.echo(
        f"{verdict}: {result.packets} packets, {len(result.flows)} flows, "
        f"{len(result.findings)} findings ({sev}); report in {out}/ ({len(written)} files)",
        err=True,
    )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--type", "types", multiple=True, help="Only observations of this type (repeatable).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar on stderr.")
@engine_options
@scale_options
@_guard
def extract(
    paths: tuple[Path, ...],
    fmt: str,
    types: tuple[str, ...],
    output: Path | None,
    quiet: bool,
    engine: str,
    tls_keylog: Path | None,
    decode_as: tuple[str, ...],
    jobs: int,
    dask_address: str | None,
) -> None:
    """Print the observations in PATH...: DNS, TLS ClientHello SNI, HTTP, WebSocket, CONNECT."""
    with _heavy_imports():
        from .pipeline import scan_with
        from .report.tabular import observation_rows, write_csv, write_jsonl

    with _tshark_warnings(), _progress(paths, quiet) as bar:
        result = scan_with(engine, list(paths), keylog=tls_keylog, decode_as=decode_as, progress=bar,
                           jobs=jobs, dask=dask_address)  # fmt: skip
    _warn_inputs(result.inputs)
    rows: Iterator[dict[str, Any]] = observation_rows(result.observations, set(types))
    with ExitStack() as stack:
        stream = sys.stdout
        if output:
            stream = stack.enter_context(open(output, "w", encoding="utf-8", newline=""))
        (write_jsonl if fmt == "jsonl" else write_csv)(rows, stream)


def _warn_inputs(inputs: list[InputInfo]) -> None:
    """Capture warnings, one line each: damage (the file is audited up to it), short snaplen,
    one-sided traffic."""
    for info in inputs:
        for warning in info.warnings:
            click.echo(f"helix-audit: warning: {info.path}: {warning}", err=True)


@main.group()
def rules() -> None:
    """Inspect and validate rules files."""


@rules.command("list")
@click.option(
    "--rules",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Rules files (default: the bundled documented tables).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@_guard
def rules_list(paths: tuple[Path, ...], as_json: bool) -> None:
    """List the rules: id, component, phase, group, hosts, ports."""
    from .policy.rules import format_rules_table, load_rules

    ruleset = load_rules(list(paths) or None)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in ruleset.rules], indent=2))
    else:
        click.echo(format_rules_table(ruleset))


@rules.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_guard
def rules_validate(files: tuple[Path, ...]) -> None:
    """Check rules files; each error names file, line and key. Exit 2 when any is invalid."""
    from .policy.rules import validate_rules_file

    errors = [e for f in files for e in validate_rules_file(f)]
    for e in errors:
        click.echo(e, err=True)
    if errors:
        sys.exit(ExitCode.USAGE)
    click.echo(f"{len(files)} file(s) valid")


@main.command("report")
@click.argument("report_json", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(["json", "html", "csv", "sarif", "junit"])
)
@_guard
def report_cmd(report_json: Path, out: Path, formats: tuple[str, ...]) -> None:
    """Re-render a report bundle from a report.json."""
    from .report.bundle import write_bundle
    from .report.json_report import load_result

    result = load_result(report_json)
    written = write_bundle(result, out, formats=list(formats) or None)
    click.echo(f"{len(written)} files written to {out}/", err=True)


@main.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--tls-keylog", type=click.Path(path_type=Path), help="SSLKEYLOGFILE for tshark.")
@click.option("--decode-as", "decode_as", multiple=True, metavar="RULE", help="tshark decode-as rule.")
@click.option("-v", "--verbose", is_flag=True, help="List matches too.")
@_guard
def verify_cmd(
    paths: tuple[Path, ...], tls_keylog: Path | None, decode_as: tuple[str, ...], verbose: bool
) -> None:
    """Second opinion: compare the native engine's observations with tshark's (exit 1 on differences)."""
    from .engines.verify import format_verify, verify

    with _tshark_warnings():
        result = verify(list(paths), keylog=tls_keylog, decode_as=decode_as)
    click.echo(format_verify(result, verbose=verbose).rstrip("\n"))
    sys.exit(result.exit_code)


@main.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Exit 1 when a new or worsened finding at or above this severity exists.",
)
@_guard
def diff_cmd(old: Path, new: Path, fmt: str, fail_on: str) -> None:
    """What changed between two audits (OLD.json baseline, NEW.json): destinations, findings, coverage."""
    from .report.diff import diff_reports, exit_code, format_text, load_report, to_json

    result = diff_reports(load_report(old), load_report(new))
    if fmt == "json":
        click.echo(json.dumps(to_json(result), indent=2, ensure_ascii=True))
    else:
        click.echo(format_text(result).rstrip("\n"))
    sys.exit(exit_code(result, fail_on))


main.add_command(capture_command(_guard))

if __name__ == "__main__":  # pragma: no cover
    main()
