"""The HTML's destination table and timeline on integer codes give what the pandas group-by gave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_audit.report import aggregate
from helix_audit.report.aggregate import _destinations_frame, destinations, timeline
from helix_audit.report.common import display_text


def _categorical(values: list[object]) -> pd.Categorical:
    texts = sorted({v for v in values if isinstance(v, str)})
    return pd.Categorical(values, categories=pd.Index(texts, dtype=object))


def _flows(rng: np.random.Generator, n: int, coded: bool) -> pd.DataFrame:
    """Flows with hostnames (some missing, some equal to an address), addresses, ports and texts;
    ``coded``: the text columns as the classified table has them (Categoricals), else objects."""
    addrs = [f"10.0.0.{i}" for i in range(12)] + ["2001:db8::1"]
    hosts = [None, None, "a.example.com", "b.example.org", "10.0.0.3", "x.y.example.co.uk", ""]
    comps = ["sandbox", "control_plane", "other", None]
    verdicts = ["allowed", "violation", "unknown", "inbound", None]
    rules = [None, "r1", "r2", "r10"]
    pick = lambda pool: [pool[i] for i in rng.integers(0, len(pool), n)]  # noqa: E731
    cols: dict[str, object] = {
        "hostname": pick(hosts),
        "resp_h": pick(addrs + [None]),
        "orig_component": pick(comps),
        "verdict": pick(verdicts),
        "rule": pick(rules),
    }
    frame = pd.DataFrame(
        {k: (_categorical(v) if coded else pd.Series(v, dtype=object)) for k, v in cols.items()}  # type: ignore[arg-type]
    )
    frame["resp_p"] = rng.choice([22, 53, 443, 8080, 65535, 0], n).astype(np.int32)
    for c in ("orig_pkts", "resp_pkts"):
        frame[c] = rng.integers(0, 5, n).astype(np.int32)
    for c in ("orig_ip_bytes", "resp_ip_bytes"):
        frame[c] = (rng.integers(0, 3, n) * 1000).astype(np.int32)  # ties in bytes
    frame["first_ts"] = rng.random(n) * 100
    return frame


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("coded", [True, False])
def test_destinations_on_codes_match_the_group_by(seed, coded):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200_000 if seed == 0 else 3_000))
    flows = _flows(rng, n, coded)
    for cap in (1, 3, 500):
        assert destinations(flows, cap) == _destinations_frame(flows, cap)


def test_destinations_fall_back_for_other_columns(monkeypatch):
    """Non-text destinations or non-integer counters: the reference group-by itself."""
    flows = _flows(np.random.default_rng(1), 500, coded=False)
    flows["orig_pkts"] = flows["orig_pkts"].astype(float)
    called = []
    monkeypatch.setattr(aggregate, "_destinations_frame", lambda f, cap: called.append(cap) or "ref")
    assert destinations(flows, 5) == "ref" and called == [5]


def _timeline_reference(flows: pd.DataFrame) -> list[str]:
    comps = flows["orig_component"].astype(object).fillna("other").astype(str)
    order = [c for c in ("control_plane", "sandbox", "other") if (comps == c).any()]
    return order + sorted(set(comps) - set(order))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("coded", [True, False])
def test_timeline_lanes_on_codes(seed, coded):
    rng = np.random.default_rng(seed)
    flows = _flows(rng, 2_000, coded)
    if seed == 1:
        flows = flows[flows["orig_component"].notna()]
    got = timeline(flows)
    comps = flows["orig_component"].astype(object).fillna("other").astype(str).to_numpy()
    want = _timeline_reference(flows)
    assert [lane.label for lane in got.lanes] == [display_text(c) for c in want]
    assert [lane.total for lane in got.lanes] == [int((comps == c).sum()) for c in want]


def test_destinations_with_a_wide_integer_span():
    """Port values too far apart for the bitmap (and negative ones) go by sets, to the same table."""
    flows = _flows(np.random.default_rng(5), 3_000, coded=True)
    flows["resp_p"] = np.random.default_rng(6).choice([-5, 7, 1 << 40], len(flows)).astype(np.int64)
    for cap in (2, 500):
        assert destinations(flows, cap) == _destinations_frame(flows, cap)
