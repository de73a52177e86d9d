"""report.json: schema validity, the round trip through load_result, null handling, verdicts."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from helix_audit.errors import InputError
from helix_audit.model import Finding, Severity
from helix_audit.report import load_result, to_dict, verdict, write_json
from helix_audit.report.json_report import FLOW_FIELDS

from .factory import HOSTILE, make_result


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    text = resources.files("helix_audit").joinpath("schema", "report.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _written(tmp_path: Path, **kw: object) -> dict:
    path = write_json(make_result(**kw), tmp_path / "report.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "kw", [{}, {"hostile": True}, {"empty": True}, {"bulk": 500}], ids=["normal", "hostile", "empty", "bulk"]
)
def test_every_report_validates(tmp_path: Path, validator, kw: dict) -> None:
    doc = _written(tmp_path, **kw)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_schema_is_strict(tmp_path: Path, validator) -> None:
    doc = _written(tmp_path)
    doc["findings"][0]["surprise"] = 1
    doc["summary"]["verdict"] = "fine"
    messages = " ".join(e.message for e in validator.iter_errors(doc))
    assert "surprise" in messages and "fine" in messages


def test_schema_flow_fields_match_flow_columns(validator) -> None:
    flow = validator.schema["$defs"]["flow"]
    assert list(flow["properties"]) == list(FLOW_FIELDS)
    assert flow["additionalProperties"] is False


def test_flows_have_policy_columns_and_nulls(tmp_path: Path) -> None:
    doc = _written(tmp_path)
    flows = {f["flow_id"]: f for f in doc["flows"]}
    assert set(flows[0]) == set(FLOW_FIELDS)
    assert flows[1]["tcp_stream"] is None and flows[1]["udp_stream"] == 1  # Int64 NA -> null
    assert flows[0]["icmp_error"] is None and flows[11]["icmp_error"] == "unreachable/13"
    assert flows[0]["hostname"] == "helix.example.com" and flows[0]["verdict"] == "allowed"
    assert flows[3]["rule"] is None


def test_nan_becomes_null_not_invalid_json(tmp_path: Path) -> None:
    result = make_result()
    result.flows.loc[0, "duration"] = math.nan
    text = write_json(result, tmp_path / "r.json").read_text()
    assert json.loads(text)["flows"][0]["duration"] is None
    assert "NaN" not in text


def test_hostile_names_survive_exactly(tmp_path: Path) -> None:
    doc = _written(tmp_path, hostile=True)
    hostnames = {f["hostname"] for f in doc["findings"]}
    assert HOSTILE["script"] in hostnames and HOSTILE["ctrl"] in hostnames
    snis = [o.get("sni") for o in doc["observations"]]
    assert HOSTILE["script"] in snis
    targets = [o.get("target") for o in doc["observations"]]
    assert HOSTILE["long"] + ":443" in targets


def test_load_result_round_trip(tmp_path: Path) -> None:
    for kw in ({}, {"hostile": True}, {"empty": True}, {"bulk": 200}):
        original = to_dict(make_result(**kw))
        path = write_json(make_result(**kw), tmp_path / "r.json")
        loaded = load_result(path)
        assert to_dict(loaded) == original
    assert loaded.flows["tcp_stream"].dtype.name == "Int64"
    assert loaded.flows["orig_pkts"].dtype.name == "int64"


def test_load_result_restores_types(tmp_path: Path) -> None:
    loaded = load_result(write_json(make_result(), tmp_path / "r.json"))
    assert isinstance(loaded.findings[0], Finding) and loaded.findings[0].severity is Severity.HIGH
    dns = [o for o in loaded.observations if o.type == "dns_response"][0]
    assert dns.answers[0].rtype == "CNAME"  # type: ignore[attr-defined]
    assert loaded.tool["site_path"] == "site.yaml"


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not a JSON file"),
        ('{"schema": "other/2"}', "not a helix-audit/1 report"),
        ("[1, 2]", "not a helix-audit/1 report"),
        ('{"schema": "helix-audit/1", "tool": {}}', "missing key"),
    ],
)
def test_load_result_errors_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_result(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_load_result_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_result(tmp_path / "absent.json")


def test_verdicts() -> None:
    assert verdict(make_result()) == "findings"
    assert verdict(make_result(empty=True)) == "inconclusive"
    quiet = make_result()
    quiet.findings = [f for f in quiet.findings if f.severity == Severity.INFO]
    assert verdict(quiet) == "compliant"
    nobody = make_result()
    nobody.findings, nobody.roles = [], []
    nobody.coverage = [replace(c, status="not_seen") for c in nobody.coverage]
    assert verdict(nobody) == "inconclusive"


def test_summary_counts(tmp_path: Path) -> None:
    doc = _written(tmp_path)
    result = make_result()
    by_sev = doc["summary"]["findings_by_severity"]
    assert sum(by_sev.values()) == len(result.findings) == doc["summary"]["findings"]
    assert by_sev["critical"] == sum(f.severity == Severity.CRITICAL for f in result.findings)
    assert doc["summary"]["flows"] == len(result.flows)
    assert doc["summary"]["packets"] == sum(i.packets for i in result.inputs)
    assert doc["summary"]["components_seen"] == ["control_plane", "sandbox"]


SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


@pytest.mark.parametrize("scenario", sorted(p.name.split(".")[0] for p in SAMPLES.glob("*.site.yaml")))
def test_pipeline_reports_validate(tmp_path: Path, validator, scenario: str) -> None:
    """Reports of the real pipeline on every sample capture validate and load back."""
    pipeline = pytest.importorskip("helix_audit.pipeline")
    capture = next(SAMPLES.glob(f"{scenario}.pcap*"))
    result = pipeline.audit([capture], site=SAMPLES / f"{scenario}.site.yaml")
    doc = json.loads(write_json(result, tmp_path / "report.json").read_text())
    assert [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)] == []
    assert to_dict(load_result(tmp_path / "report.json")) == doc
