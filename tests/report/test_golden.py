"""Golden files for report.json and report.html, with the tool version and times scrubbed.

Regenerate after an intended change with ``HELIX_UPDATE_GOLDEN=1 pytest tests/report/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helix_audit.report.html import render_html
from helix_audit.report.json_report import dumps, to_dict

from .factory import make_result

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HELIX_UPDATE_GOLDEN") == "1"
_GENERATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def scrub_json(doc: dict) -> str:
    doc["tool"]["version"] = "<version>"
    doc["tool"]["generated"] = "<generated>"
    return dumps(doc)


def scrub_html(html: str) -> str:
    html = re.sub(r"(<tr><th>Tool</th><td colspan=\"2\">helix-audit )[^<]+", r"\1<version>", html)
    return _GENERATED.sub("<generated>", html)


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path}: golden file missing; run with HELIX_UPDATE_GOLDEN=1 to create it")
        path.write_text(actual, encoding="utf-8", newline="")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its golden file (HELIX_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("hostile", [False, True], ids=["normal", "hostile"])
def test_json_golden(hostile: bool) -> None:
    check(
        f"report-{'hostile' if hostile else 'normal'}.json", scrub_json(to_dict(make_result(hostile=hostile)))
    )


@pytest.mark.parametrize("hostile", [False, True], ids=["normal", "hostile"])
def test_html_golden(hostile: bool) -> None:
    check(
        f"report-{'hostile' if hostile else 'normal'}.html",
        scrub_html(render_html(make_result(hostile=hostile))),
    )


def test_scrubbing_hides_version_and_time() -> None:
    result = make_result()
    result.tool = {**result.tool, "version": "9.9.9", "generated": "2030-05-06T07:08:09Z"}
    assert "9.9.9" not in scrub_html(render_html(result))
    assert "2030-05-06" not in scrub_json(json.loads(json.dumps(to_dict(result))))
