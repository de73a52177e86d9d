"""report.sarif against the official SARIF 2.1.0 schema; junit.xml structurally.

JUnit XML has no single normative schema. The checks follow the layout Jenkins' JUnit plugin,
GitLab and GitHub test reporters read: ``testsuites`` > ``testsuite`` (tests, failures, errors,
skipped counts that add up) > ``testcase`` (classname, name, time) holding at most one ``failure``
or ``skipped``; the file is well-formed XML 1.0 (no control characters).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from helix_audit.model import Severity
from helix_audit.report.junit import render_junit
from helix_audit.report.sarif import LEVELS, render_sarif

from .factory import HOSTILE, make_result

SARIF_SCHEMA = Path(__file__).parent / "schemas" / "sarif-2.1.0-rtm.5.json"


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("kw", [{}, {"hostile": True}, {"empty": True}])
def test_sarif_validates(sarif_validator, kw: dict) -> None:
    doc = json.loads(render_sarif(make_result(**kw)))
    assert [e.message for e in sarif_validator.iter_errors(doc)] == []
    assert doc["version"] == "2.1.0"


def test_sarif_rules_results_levels() -> None:
    result = make_result(hostile=True)
    run = json.loads(render_sarif(result))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert sorted(r["id"] for r in rules) == sorted({f.kind for f in result.findings})
    assert len(run["results"]) == len(result.findings)
    for res, f in zip(run["results"], result.findings, strict=True):
        assert res["ruleId"] == f.kind and rules[res["ruleIndex"]]["id"] == f.kind
        assert res["level"] == LEVELS[Severity(f.severity).value]
        assert res["partialFingerprints"]["helixFindingId/v1"] == f.id
        assert res["properties"]["evidence"][0]["frames"] == list(f.evidence[0].frames)
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == f.evidence[0].file
    assert run["artifacts"][0]["hashes"]["sha-256"] == result.inputs[0].sha256
    texts = [r["message"]["text"] for r in run["results"]]
    assert any(HOSTILE["script"] in t for t in texts)


def _junit(**kw: object) -> ET.Element:
    return ET.fromstring(render_junit(make_result(**kw)))


@pytest.mark.parametrize("kw", [{}, {"hostile": True}, {"empty": True}])
def test_junit_structure(kw: dict) -> None:
    root = _junit(**kw)
    assert root.tag == "testsuites"
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        for case in cases:
            assert case.get("classname") and case.get("name") and case.get("time") == "0"
            outcomes = [c.tag for c in case if c.tag in ("failure", "skipped", "error")]
            assert len(outcomes) <= 1
        counts = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
        }
        for key, value in counts.items():
            assert suite.get(key) == str(value)
            total[key] += value
        assert suite.get("errors") == "0"
    for key, value in total.items():
        assert root.get(key) == str(value)


def test_junit_cases_per_endpoint_and_finding() -> None:
    result = make_result(hostile=True)
    root = _junit(hostile=True)
    coverage = root.find("testsuite[@name='coverage']")
    findings = root.find("testsuite[@name='findings']")
    assert coverage is not None and findings is not None
    cases = coverage.findall("testcase")
    assert len(cases) == len(result.coverage)
    for case, entry in zip(cases, result.coverage, strict=True):
        outcome = {"ok": None, "blocked": "failure", "not_seen": "skipped"}[entry.status]
        tags = [c.tag for c in case if c.tag in ("failure", "skipped")]
        assert tags == ([outcome] if outcome else [])
        assert entry.rule in (case.get("name") or "")
    fcases = findings.findall("testcase")
    assert len(fcases) == len(result.findings)
    assert all(c.find("failure") is not None for c in fcases)
    messages = " ".join(c.find("failure").get("message", "") for c in fcases)  # type: ignore[union-attr]
    names = " ".join(c.get("name", "") for c in fcases)
    assert HOSTILE["script"] in messages and HOSTILE["img"] in names
    assert "bell\\x07esc\\x1b" in names


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"a": [], "b": {}, "c": [[], [{}]], "d": ()},
        {"s": HOSTILE, "u": "caf\u00e9 \ud800 \x00\x1f\x7f \u2028", "k\u00e9y\n": "v"},
        [0, -1, 2**70, True, False, None, 1.5, 1e-05, 1e16, -0.0, 1700000000.123456, 0.1 + 0.2],
        {"nested": {"deep": [{"x": [1, [2, [3, {"y": "z"}]]]}]}},
        {"frames": [1, 2, 3, -4, 2**70], "flags": [True, 1], "one": [7]},
        {1: "int key", "x": 1},  # not a string key: the stdlib spells it
        {"tuple": (1, "two", (3.0,))},
    ],
)
def test_sarif_encoder_is_the_stdlibs_indent_1(value: object) -> None:
    from helix_audit.report.sarif import _dumps

    assert _dumps(value) == json.dumps(value, indent=1, ensure_ascii=True, allow_nan=False)


def test_sarif_encoder_refuses_nan_like_the_stdlib() -> None:
    from helix_audit.report.sarif import _dumps

    for bad in (float("nan"), [float("inf")], {"x": -float("inf")}):
        with pytest.raises(ValueError):
            _dumps(bad)
