"""The vectorised and cached paths of classification give what the plain ones give."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from helix_audit.model import (
    DnsAnswer,
    DnsQuery,
    DnsResponse,
    HttpConnect,
    HttpRequest,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.names import attribute
from helix_audit.policy.evidence import _many_flows_evidence, flow_evidence
from helix_audit.policy.flowrows import Columns, FlowRows, group_positions
from helix_audit.policy.observed import Observed

from .factory import Capture

HOST, OTHER, DNS = "10.0.1.5", "10.0.1.9", "10.0.0.53"


def test_observed_serves_subclasses_in_capture_order_and_finds_flows_by_five_tuple():
    c = Capture()
    fid = c.flow(HOST, 5000, "192.0.2.1", 443)
    c.add(TlsClientHello, fid, sni="a.example")
    c.add(
        HttpConnect, fid, method="CONNECT", host="b.example:443", path="b.example:443", target="b.example:443"
    )
    c.add(HttpRequest, fid, method="GET", host="c.example", path="/")
    c.add(WebSocketUpgrade, None, row=c.rows[fid], reply=True, method="GET", host="d.example", path="/ws")
    seen = Observed(c.frame_df(), c.obs)
    http = seen.of(HttpRequest)
    assert [type(o) for o in http] == [HttpConnect, HttpRequest, WebSocketUpgrade]
    assert seen.of(TlsClientHello, HttpRequest) == c.obs
    assert seen.flow_ids(WebSocketUpgrade) == [fid]  # no flow id of its own: found by its 5-tuple
    assert seen.of(DnsQuery) == [] and seen.of(HttpRequest) is http


def test_answers_at_the_same_instant_the_later_one_names_the_flow():
    c = Capture()
    c.resolve(HOST, DNS, "first.example", "192.0.2.10", t=1)
    c.resolve(HOST, DNS, "second.example", "192.0.2.10", t=1)
    c.resolve(OTHER, DNS, "other.example", "192.0.2.11", t=1)
    same_time = c.flow(HOST, 5000, "192.0.2.10", 443, t=1.02)  # the answers' own instant
    anyone = c.flow(HOST, 5001, "192.0.2.11", 443, t=2)  # only another host got this answer
    out = attribute(c.frame_df(), c.obs).set_index("flow_id")
    assert out.loc[same_time, "hostname"] == "second.example"
    assert out.loc[anyone, "hostname"] == "other.example"


def test_one_record_answers_name_by_their_own_owner_whatever_the_question():
    c = Capture()
    fid = c.lookup(HOST, DNS, "asked.example", t=0, answers=())
    owner = DnsAnswer("Owner.Example.", "A", 60, "192.0.2.40")
    c.add(DnsResponse, fid, t=0.5, reply=True, id=1, qname="asked.example", qtype="A", answers=(owner,))
    flow = c.flow(HOST, 5000, "192.0.2.40", 443, t=1)
    out = attribute(c.frame_df(), c.obs).set_index("flow_id")
    assert out.loc[flow, "names"] == ("owner.example",)


def _random_cols(rng: random.Random, n: int) -> Columns:
    frame = pd.DataFrame(
        {
            "a": [rng.choice(["x", "y", None, "z"]) for _ in range(n)],
            "b": [rng.choice([3, 1, 2]) for _ in range(n)],
            "c": pd.array([rng.choice(["p", "q", None]) for _ in range(n)], dtype="str"),
        }
    )
    return Columns(frame, {"d": np.array([rng.choice(["u", "v"]) for _ in range(n)], dtype=object)})


def test_group_positions_iterates_like_pandas_groupby():
    rng = random.Random(4)
    for n in (1, 2, 7, 50):
        cols = _random_cols(rng, n)
        mask = np.array([rng.random() < 0.7 for _ in range(n)])
        keys = ["a", "b", "c", "d"]
        got = [g.tolist() for g in group_positions(cols, keys, mask)]
        frame = cols.frame.assign(d=cols("d"))[mask]
        want = [
            list(np.flatnonzero(mask)[frame.index.get_indexer(part.index)])
            for _, part in frame.groupby(keys, sort=True, dropna=False)
        ]
        assert got == want


def test_few_flows_evidence_equals_the_array_path():
    c = Capture()
    rng = random.Random(9)
    for i in range(20):
        port, file = rng.choice([443, 80]), rng.choice(["a.pcap", "b.pcap"])
        transport = rng.choice(["tcp", "tcp", "udp"])
        c.flow(HOST, 5000 + i, "192.0.2.9", port, t=rng.choice([0, 1, 2]), transport=transport, file=file)
    cols = Columns(c.frame_df())
    for _ in range(40):
        pos = np.array(sorted(rng.sample(range(20), rng.randint(2, 12))), dtype=np.int64)
        rows = FlowRows(cols, pos)
        assert flow_evidence(rows) == _many_flows_evidence(rows)


@pytest.mark.parametrize("n", [300, 70_000])  # the second: keys as dense integers, not hashed
def test_legacy_notes_ask_the_matcher_once_per_key_and_agree_with_it_per_row(n):
    from helix_audit.policy.classify import _legacy_notes
    from helix_audit.policy.flowcodes import FlowCodes
    from helix_audit.policy.match import Matcher
    from helix_audit.policy.roles import host_components
    from helix_audit.policy.rules import load_rules

    rng = random.Random(5)
    ports = [22, 3478, 8081, 40050, 47984, 47999, 48010, 48100]
    addresses = [f"10.0.2.{k}" for k in range(12)]
    lookup = {a: rng.choice(["sandbox", "control_plane", "other"]) for a in addresses}
    frame = pd.DataFrame(
        {
            "orig_h": [rng.choice(addresses) for _ in range(n)],
            "resp_h": [rng.choice(addresses) for _ in range(n)],
            "resp_p": [rng.choice(ports) for _ in range(n)],
            "transport": [rng.choice(["tcp", "udp", "icmp"]) for _ in range(n)],
        }
    )
    codes = FlowCodes(frame)
    components = host_components(lookup, codes)
    resp_c = frame["resp_h"].map(lookup).to_numpy(dtype=object)
    mask = np.array([rng.random() < 0.8 for _ in range(n)])
    matcher = Matcher(load_rules(), None, [])
    asked = []
    legacy = matcher.legacy

    def counting(comp: str, port: int, transport: str) -> str | None:
        asked.append((comp, port, transport))
        return legacy(comp, port, transport)

    matcher.legacy = counting  # type: ignore[method-assign]
    rows = np.flatnonzero(mask)
    notes, code = _legacy_notes(frame, rows, codes.hosts()[1], components, codes, matcher)
    got = [notes[k] for k in code.tolist()]
    want = [legacy(resp_c[i], int(frame["resp_p"][i]), frame["transport"][i]) for i in rows.tolist()]
    assert got == want and any(w is not None for w in want)
    assert (
        len(asked)
        == len(set(asked))
        == len({(resp_c[i], frame["resp_p"][i], frame["transport"][i]) for i in rows.tolist()})
    )
    none = np.zeros(0, dtype=np.int64)
    assert _legacy_notes(frame, none, codes.hosts()[1], components, codes, matcher)[1].tolist() == []


@pytest.mark.parametrize("n", [1000, 70_000])  # hashed, then counted in a table
def test_evidence_combinations_code_each_flow_by_its_key(n):
    from helix_audit.names import _combinations

    rng = np.random.default_rng(n)
    for high in (2, 50, 1 << 19, 1 << 40):
        key = rng.integers(0, high, size=n)
        codes, uniq = _combinations(key)
        assert (np.asarray(uniq)[codes] == key).all()
        assert len(set(np.asarray(uniq).tolist())) == len(uniq) == len(np.unique(key))
