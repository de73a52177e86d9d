"""Classification's column-wise bulk paths (few-flow evidence and flow ids read for many findings at
once, the DNS answer rows spelled out with numpy, the lookups' own columns, the DNS evidence order
by one combined key) give what the per-item paths give, on mutated and hostile inputs too."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import pandas as pd

from helix_audit.dnsanswers import _canon, _chains
from helix_audit.dnsanswers import dns_chains as _dns_chains
from helix_audit.model import DnsAnswer, DnsQuery, DnsResponse, Evidence
from helix_audit.policy.dnsevidence import _by_name_client_frame
from helix_audit.policy.evidence import flow_evidence
from helix_audit.policy.findings import few_flows_evidence, flow_ids_of
from helix_audit.policy.flowrows import Columns, FlowRows
from helix_audit.policy.observed import Observed
from helix_audit.policy.outcome import Lookups, lookups

from .factory import FILE, Capture, lookup_finding

CLIENTS = ["10.0.1.5", "10.0.1.6", "fd00::1:5", "10.0.1.7"]
ADDRESSES = ["192.0.2.1", "192.0.2.2", "2001:db8::9", "2001:DB8:0::9", "not-an-address"]


def _flows(rng: random.Random, n: int) -> pd.DataFrame:
    """Flows with every value :func:`flow_evidence` reads varied: files (two, missing), times (NaN
    too), transports, key frames (malformed, missing), stream indexes (missing)."""
    c = Capture()
    for i in range(n):
        over: dict[str, Any] = {"file": rng.choice([FILE, FILE, "b.pcap", None])}
        if rng.random() < 0.3:
            over["key_frames"] = rng.choice(["", "7", "x,8", None, "3,,4"])
        c.flow(
            rng.choice(CLIENTS),
            5000 + i,
            rng.choice(ADDRESSES[:3]),
            rng.choice([443, 53, 80]),
            transport=rng.choice(["tcp", "tcp", "udp", "icmp"]),
            t=rng.choice([0, 1, 1, 2]),
            **over,
        )
    frame = c.frame_df()
    frame.loc[frame.index[::5], "tcp_stream"] = pd.NA
    at = rng.sample(range(n), 2)
    frame.loc[frame.index[at], "first_ts"] = float("nan")
    frame.loc[frame.index[::7], "last_ts"] = float("nan")
    return frame


def test_few_flow_evidence_and_flow_ids_in_bulk_equal_the_per_group_paths():
    rng = random.Random(21)
    for _ in range(6):
        frame = _flows(rng, 60)
        cols = Columns(frame)
        other = cols.replace(state=np.zeros(len(frame), dtype=object))  # a second column set
        bare = Columns(frame.drop(columns=["tcp_stream", "udp_stream"]))  # no stream indexes
        groups = []
        for _ in range(80):
            rows = rng.sample(range(60), rng.randint(2, 32))
            if rng.random() < 0.5:  # one file (the slices path)
                rows = [r for r in rows if frame["file"].iloc[r] == FILE] or rows
            groups.append(FlowRows(rng.choice([cols, other, bare]), np.array(rows, dtype=np.int64)))
        got = few_flows_evidence(groups)
        for rows, ev in zip(groups, got, strict=True):
            if ev is None:  # left to the per-group path: a NaN first time
                assert np.isnan(rows.col("first_ts").astype(float)).any()
            else:
                assert repr(ev) == repr(flow_evidence(rows))  # a NaN last time is not equal to itself
        assert sum(ev is not None for ev in got) > 20
        singles = [FlowRows(cols, np.array([i], dtype=np.int64)) for i in range(3)]
        everything = [*groups, *singles, FlowRows(cols, np.zeros(0, dtype=np.int64))]
        assert flow_ids_of(everything) == [tuple(sorted(g.values("flow_id"))) for g in everything]


def test_the_combined_sort_key_orders_as_lexsort():
    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        name_c = np.sort(rng.integers(0, 5, n)).astype(np.int64)
        pos = np.empty(n, dtype=np.int64)  # the pairs come by name, then position
        for name in np.unique(name_c):
            mine = name_c == name
            pos[mine] = np.sort(rng.choice(1000, int(mine.sum()), replace=False))
        clients = int(rng.integers(1, 6))
        client_c = rng.integers(-1, clients, n).astype(np.int64)  # -1: a missing client
        frame = rng.integers(-3 if trial % 3 == 0 else 0, 20, n).astype(np.int64)
        if trial % 5 == 0:
            frame[0] = 1 << 60  # the key would not fit: lexsort itself
        got = _by_name_client_frame(name_c, client_c, clients, frame, pos)
        assert (got == np.lexsort((pos, frame, client_c, name_c))).all()


def _reference_chains(flows: pd.DataFrame, responses: list[DnsResponse]) -> list[tuple[str, ...] | None]:
    """Per flow, the chain of the latest answer naming its responder delivered to its originator at
    or before it began (the last one listed among equal times), else to anyone: answer by answer.
    A NaN time is later than every other time and equal to another NaN (numpy's sort order)."""
    rows = []
    for obs in responses:
        if obs.answers and obs.rcode == "NOERROR" and obs.protocol == "dns":
            rows += [(_when(obs.ts), obs.dst, addr, chain) for addr, chain in _chains(obs)]
    out: list[tuple[str, ...] | None] = []
    for orig, resp, ts in zip(flows["orig_h"], flows["resp_h"], flows["first_ts"], strict=True):
        best = None
        for own in (True, False):
            hits = [r for r in rows if r[2] == resp and r[0] <= _when(ts) and (r[1] == orig or not own)]
            if hits:
                top = max(r[0] for r in hits)
                best = [r for r in hits if r[0] == top][-1][3]
                break
        out.append(best)
    return out


def _when(ts: float) -> tuple[int, float]:
    return (1, 0.0) if ts != ts else (0, ts)


def test_answer_rows_name_flows_as_the_answer_by_answer_reference():
    rng = random.Random(13)
    names = ["a.example", "b.example", "alias.example"]
    for _ in range(6):
        c = Capture()
        for _ in range(50):
            client, name = rng.choice(CLIENTS), rng.choice(names)
            records = [DnsAnswer(name, "CNAME", 60, "alias.example")] if rng.random() < 0.3 else []
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                records.append(DnsAnswer(rng.choice([name, "alias.example"]), "A", 60, rng.choice(ADDRESSES)))
            c.lookup(
                client,
                "10.0.0.53",
                name,
                t=rng.choice([0, 1, 2, 3]),
                answers=tuple(records),
                rcode=rng.choice(["NOERROR", "NOERROR", "NXDOMAIN"]),
            )
        for i in range(40):
            c.flow(
                rng.choice([*CLIENTS, None]),
                6000 + i,
                rng.choice([*map(_canon, ADDRESSES), None]),
                443,
                t=rng.choice([0.5, 1, 2, 3.5, 9]),
            )
        flows = c.frame_df()
        flows.loc[flows.index[[3, -1]], "first_ts"] = float("nan")
        for at in rng.sample(range(len(c.obs)), 3):  # a response (or a query) without a time
            c.obs[at] = dataclasses.replace(c.obs[at], ts=float("nan"))
        seen = Observed(flows, c.obs)
        code, chains = _dns_chains(flows, seen)
        got = [chains[k] if k >= 0 else None for k in code.tolist()]
        assert got == _reference_chains(flows, seen.of(DnsResponse))
        assert any(g is not None for g in got)


def test_lookups_carry_their_columns_and_find_the_flows_of_queries_without_one():
    from helix_audit.model import DnsQuery
    from helix_audit.policy.observed import observation_flows

    c = Capture()
    rng = random.Random(4)
    for i in range(40):
        c.lookup(
            rng.choice(CLIENTS),
            "10.0.0.53",
            rng.choice(["A.example.", "b.example", ""]),
            t=i / 4,
            rcode=rng.choice(["NOERROR", "SERVFAIL", None]),
        )
    for at in range(0, len(c.obs), 3):  # some observations without a flow id: found by 5-tuple
        c.obs[at] = dataclasses.replace(c.obs[at], flow_id=None)
    flows = c.frame_df()
    found = lookups(flows, c.obs, capture_end=20.0)
    assert isinstance(found, Lookups) and len(found) > 20
    assert found.srcs == [lk.query.src for lk in found]
    assert found.names == [lk.name for lk in found]
    assert found.outcomes == [lk.outcome for lk in found]
    assert found.times == [lk.query.ts for lk in found]
    queries = [lk.query for lk in found]
    assert [lk.flow_id for lk in found] == observation_flows(flows, queries)
    assert any(q.flow_id is None for q in queries) and all(lk.flow_id is not None for lk in found)
    assert sum(isinstance(o, DnsQuery) for o in c.obs) > len(found)  # empty names: not lookups


def test_built_findings_are_the_constructed_findings():
    from helix_audit.model import Finding, Severity
    from helix_audit.policy.findings import Draft, build_all

    frame = _flows(random.Random(2), 6)
    cols = Columns(frame)
    drafts = [
        Draft(
            "k", Severity.LOW, "sandbox", "192.0.2.9", 443, "tcp", None, "m", sources, rows=rows, extra=extra
        )
        for sources, rows, extra in (
            (["10.0.1.5"], FlowRows(cols, np.array([1], dtype=np.int64)), {}),
            (["10.0.1.6", "10.0.1.6"], FlowRows(cols, np.array([2, 3], dtype=np.int64)), {"count": 2}),
            (["fd00::1:5", "10.0.1.7", "10.0.1.5"], None, {"count": 3, "id_parts": ("/x",), "path": "/x"}),
        )
    ]
    for finding in build_all(drafts):
        again = Finding(**vars(finding))
        assert vars(finding) == vars(again) and finding == again
    assert build_all(drafts)[2].sources == ("10.0.1.5", "10.0.1.7", "fd00::1:5")


def test_dns_evidence_of_many_sources_equals_the_reference():
    """Findings over more hosts than are merged lazily: their lookups sorted at once."""
    from helix_audit.policy import dnsevidence

    from . import reference

    rng = random.Random(17)
    hosts = [f"10.0.{k // 200}.{k % 200 + 1}" for k in range(30)]
    c = Capture()
    for _ in range(400):
        c.lookup(
            rng.choice(hosts), "10.0.0.53", rng.choice(["a.example", "b.example"]), t=rng.choice([0, 1, 2])
        )
        if rng.random() < 0.2:  # a second file, frames that repeat across files and hosts
            c.obs[-1] = dataclasses.replace(c.obs[-1], file="b.pcap", frame=rng.randint(1, 60))
    findings = [
        lookup_finding(
            hosts[0],
            rng.choice(["a.example", "B.example."]),
            () if k % 2 else (_listed(c.obs[5 * k]),),  # some lookup frames listed already
            tuple(rng.sample(hosts, rng.choice([9, 20, 30]))),
        )
        for k in range(12)
    ]
    got = dnsevidence.with_dns_evidence(findings, c.obs)
    assert got == reference.with_dns_evidence(findings, c.obs)
    assert all(len(f.sources) > dnsevidence._MERGED_HOSTS and f.evidence for f in got)


def _listed(obs: DnsQuery | DnsResponse) -> Evidence:
    return Evidence(obs.file, (obs.frame,), obs.ts, obs.ts, ())


def test_flow_ids_read_in_the_names_pass_are_the_observed_ones():
    from helix_audit.model import HttpConnect, HttpRequest, TlsAlert, TlsClientHello, WebSocketUpgrade
    from helix_audit.names import _direct_names

    rng = random.Random(6)
    c = Capture()
    for i in range(60):
        fid = c.flow(rng.choice(CLIENTS), 7000 + i, rng.choice(ADDRESSES[:3]), 443)
        kind = rng.choice([TlsClientHello, WebSocketUpgrade, HttpRequest, HttpConnect, TlsAlert])
        fields = {"sni": "a.example"} if kind is TlsClientHello else {}
        if kind in (WebSocketUpgrade, HttpRequest, HttpConnect):
            fields = {"method": "GET", "host": "a.example", "path": "/x"}
        c.add(kind, fid, **fields)
        if rng.random() < 0.3:  # no flow id: found by 5-tuple (or not at all: a flow we never saw)
            c.obs[-1] = dataclasses.replace(c.obs[-1], flow_id=None, sport=rng.choice([7000 + i, 1]))
    flows = c.frame_df()
    seen, fresh = Observed(flows, c.obs), Observed(flows, c.obs)
    _direct_names(seen)
    for types in ((TlsClientHello, HttpRequest), (TlsClientHello,), (WebSocketUpgrade,), (HttpConnect,)):
        assert seen.flow_ids(*types) == fresh.flow_ids(*types)
    assert None in fresh.flow_ids(TlsClientHello, HttpRequest)
