"""Classification's bulk paths (DNS evidence index, one-flow evidence, WebSocket drafts merged
as they are made, direct names as tuples) give what the per-item reference paths give."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pandas as pd

from helix_audit.model import (
    DnsAnswer,
    DnsQuery,
    DnsResponse,
    Evidence,
    Finding,
    HttpConnect,
    HttpRequest,
    Severity,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.names import _direct_names
from helix_audit.policy.dnsevidence import with_dns_evidence
from helix_audit.policy.findings import build_all, flow_evidence, group, single_flow_evidence
from helix_audit.policy.flowrows import Columns, FlowRows
from helix_audit.policy.observed import Observed

from . import reference
from .factory import FILE, Capture

NAMES = ["a.example", "B.Example.", "c.example", "alias.example", "x.arpa", ""]
CLIENTS = ["10.0.1.5", "10.0.1.6", "fd00::1:5", "10.0.1.7"]


def _lookups(rng: random.Random) -> Capture:
    """DNS traffic: several clients, names in mixed case with trailing dots, CNAME chains, empty
    questions, two files, repeated frames, other observations in between."""
    c = Capture()
    for _ in range(120):
        client, name = rng.choice(CLIENTS), rng.choice(NAMES)
        answers: tuple[DnsAnswer, ...] = ()
        if rng.random() < 0.5:
            answers = (
                DnsAnswer(name, "CNAME", 60, rng.choice(NAMES)),
                DnsAnswer("alias.example", "A", 60, "192.0.2.1"),
            )
        fid = c.lookup(
            client,
            "10.0.0.53",
            name,
            t=rng.choice([0, 1, 2, 3]),
            answers=answers,
            rcode=rng.choice(["NOERROR", None]),
        )
        if rng.random() < 0.2:
            c.add(TlsClientHello, fid, sni=name)
        if rng.random() < 0.3:  # a second file, frames that repeat across files
            last = c.obs[-1]
            c.obs[-1] = dataclasses.replace(last, file="b.pcap", frame=rng.randint(1, 40))
    return c


def _finding(rng: random.Random, c: Capture) -> Finding:
    sources = tuple(rng.sample(CLIENTS, rng.choice([0, 1, 1, 2, 4])))
    dns = [o for o in c.obs if isinstance(o, (DnsQuery, DnsResponse))]
    evidence: tuple[Evidence, ...] = ()
    if rng.random() < 0.5:  # evidence that lists some lookup frames already
        picked = rng.sample(dns, 3)
        evidence = (Evidence(picked[0].file, tuple(sorted({o.frame for o in picked})), 0.0, 1.0, ()),)
    return Finding(
        id="x",
        kind="unexpected_destination",
        severity=Severity.LOW,
        component="sandbox",
        src=rng.choice(CLIENTS),
        src_port=None,
        dst="192.0.2.1",
        dst_port=443,
        transport="tcp",
        hostname=rng.choice([*NAMES, None, "A.EXAMPLE"]),
        message="m",
        evidence=evidence,
        sources=sources,
    )


def test_dns_evidence_equals_the_per_lookup_reference():
    rng = random.Random(11)
    for _ in range(8):
        c = _lookups(rng)
        findings = [_finding(rng, c) for _ in range(60)]
        got = with_dns_evidence(findings, c.obs)
        assert got == reference.with_dns_evidence(findings, c.obs)
        assert any(g.evidence != f.evidence for g, f in zip(got, findings, strict=True))


def test_dns_evidence_keeps_the_first_sixteen_lookups_per_file_across_sources():
    c = Capture()
    for i in range(40):
        c.lookup(CLIENTS[i % 3], "10.0.0.53", "a.example", t=i)
    finding = dataclasses.replace(
        _finding(random.Random(1), c), hostname="a.example", sources=tuple(CLIENTS[:3]), evidence=()
    )
    (got,) = with_dns_evidence([finding], c.obs)
    assert got == reference.with_dns_evidence([finding], c.obs)[0]
    assert len(got.evidence) == 1 and len(got.evidence[0].frames) == 16


def test_one_flow_evidence_in_bulk_equals_per_flow():
    c = Capture()
    rng = random.Random(3)
    for i in range(30):
        transport = rng.choice(["tcp", "udp", "icmp", "icmp6"])
        over = {"file": rng.choice([FILE, "b.pcap", None])}
        if rng.random() < 0.3:
            over["key_frames"] = rng.choice(["", "7", "x,8", None])
        dst = rng.choice(["192.0.2.9", "2001:db8::9"])
        c.flow(rng.choice(CLIENTS), 5000 + i, dst, rng.choice([443, 53]), transport=transport, **over)
    frame = c.frame_df()
    frame.loc[frame.index[::4], "tcp_stream"] = pd.NA  # stream unknown: address filter
    cols = Columns(frame)
    other = cols.replace(state=np.zeros(len(frame), dtype=object))  # a second column set
    groups = [FlowRows(rng.choice([cols, other]), np.array([i], dtype=np.int64)) for i in range(30)]
    assert single_flow_evidence(groups) == [flow_evidence(g) for g in groups]
    no_streams = Columns(frame.drop(columns=["tcp_stream", "udp_stream"]))
    groups = [FlowRows(no_streams, np.array([i], dtype=np.int64)) for i in range(30)]
    assert single_flow_evidence(groups) == [flow_evidence(g) for g in groups]


def test_build_all_equals_building_each_draft():
    from helix_audit.policy.findings import Draft

    c = Capture()
    for i in range(6):
        c.flow(CLIENTS[i % 2], 5000 + i, "192.0.2.9", 443)
    cols = Columns(c.frame_df())

    def draft(pos: list[int], evidence: tuple[Evidence, ...] = ()) -> Draft:
        rows = FlowRows(cols, np.array(pos, dtype=np.int64)) if pos else None
        return Draft(
            "k",
            Severity.LOW,
            "sandbox",
            "192.0.2.9",
            443,
            "tcp",
            None,
            "m",
            ["10.0.1.5"],
            rows=rows,
            evidence=evidence,
        )

    ev = (Evidence(FILE, (1,), 0.0, 1.0),)
    drafts = group([draft([0]), draft([1]), draft([2, 3]), draft([], ev), draft([4], ev)])
    assert build_all(drafts) == [d.build() for d in drafts]


def _ws_capture(rng: random.Random) -> tuple[pd.DataFrame, list]:
    c = Capture()
    for i in range(40):
        src = rng.choice(["10.0.1.5", "10.0.1.6", "10.9.9.9"])
        dst = rng.choice(["10.0.0.2", "10.0.0.2", "192.0.2.50"])
        fid = c.flow(src, 6000 + i, dst, rng.choice([8080, 443]))
        if rng.random() < 0.4:
            c.add(TlsClientHello, fid, sni=rng.choice(["helix.example.com", "other.example"]))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(
                [
                    "/api/v1/revdial",
                    "/api/v1/external-agents/sync?x=1",
                    "/ws/old",
                    "/api/v1/websocket/runner",
                    "/z",
                ]
            )
            host = rng.choice(["helix.example.com", "HELIX.example.com:8080", None])
            c.add(
                WebSocketUpgrade,
                fid,
                method="GET",
                host=host,
                path=path,
                accepted=rng.choice([True, False, None]),
            )
    return c.frame_df(), c.obs


def test_websocket_drafts_merged_as_made_equal_one_draft_per_upgrade_grouped():
    from helix_audit.names import attribute
    from helix_audit.policy.match import Matcher
    from helix_audit.policy.roles import assign_roles, component_columns
    from helix_audit.policy.rules import load_rules
    from helix_audit.policy.wsfind import websocket_drafts

    rng = random.Random(8)
    for _ in range(5):
        flows, obs = _ws_capture(rng)
        named = attribute(flows, obs)
        roles = assign_roles(named, obs, None)
        named["orig_component"], named["resp_component"] = component_columns(named, roles)
        matcher = Matcher(load_rules(), None, [r.address for r in roles if r.component == "control_plane"])
        components = {r.address: r.component for r in roles}
        got = build_all(group(websocket_drafts(named, obs, matcher, components)))
        others = [o for o in obs if not isinstance(o, WebSocketUpgrade)]
        one_each = [
            d
            for o in obs
            if isinstance(o, WebSocketUpgrade)
            for d in websocket_drafts(named, [*others, o], matcher, components)
        ]
        want = build_all(group(one_each))
        assert sorted(got, key=lambda f: f.id) == sorted(want, key=lambda f: f.id)
        assert got and any(len(f.sources) > 1 for f in got)


def test_direct_names_equal_the_per_flow_reference():
    rng = random.Random(2)
    c = Capture()
    hosts = ["a.example", "B.example:8443", "[2001:db8::1]:443", "", None, "c.example."]
    for i in range(80):
        fid = c.flow(
            rng.choice(CLIENTS), 7000 + i, rng.choice(["192.0.2.1", "10.0.0.3"]), rng.choice([443, 3128])
        )
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(["tls", "ws", "ws_abs", "http", "http_abs", "connect"])
            host = rng.choice(hosts)
            if kind == "tls":
                c.add(TlsClientHello, fid, sni=host)
            elif kind.startswith("ws"):
                path = "ws://d.example:81/x" if kind == "ws_abs" else "/api/v1/revdial"
                c.add(WebSocketUpgrade, fid, method="GET", host=host, path=path)
            elif kind.startswith("http"):
                path = (
                    rng.choice(["http://e.example/x", "https://f.example:8443/", "HTTP://g.example"])
                    if kind == "http_abs"
                    else "/"
                )
                c.add(HttpRequest, fid, method="GET", host=host, path=path)
            else:
                target = rng.choice(["h.example:443", "i.example", "j.example:0", "[2001:db8::2]:8443", ""])
                c.add(HttpConnect, fid, method="CONNECT", host=host, path=target, target=target)
    seen = Observed(c.frame_df(), c.obs)
    found, proxy = _direct_names(seen)
    want = reference.direct_names(seen)
    assert {f: t for f, t in found.items()} == {f: tuple(i.found.items()) for f, i in want.items() if i.found}
    assert proxy.ports == {f: i.target_port for f, i in want.items() if i.proxied}
    assert len({len(t) for t in found.values()}) > 2  # flows with several names, in first-seen order


def test_key_frames_of_equals_the_per_part_parse():
    from helix_audit.policy.findings import key_frames_of

    cells = ["3,5,9", "7", "", None, float("nan"), ",3", "3,", "3,,4", " 3, 4", "x,8", "12a", "4,5 "]
    for cell in cells:
        assert key_frames_of(cell) == [int(k) for k in str(cell or "").split(",") if k.strip().isdigit()]


def test_new_finding_is_the_constructed_finding():
    import pytest

    from helix_audit.policy.findings import new_finding

    c = _lookups(random.Random(4))
    made = _finding(random.Random(5), c)
    fields = vars(made)
    fast = new_finding(**fields)
    assert fast == made and vars(fast) == vars(made) and type(fast) is Finding
    assert hash(dataclasses.replace(fast, extra={})) == hash(dataclasses.replace(made, extra={}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.kind = "other"  # type: ignore[misc]
    partial = {k: v for k, v in fields.items() if k not in ("extra", "rule")}
    assert new_finding(**partial) == Finding(**partial)  # defaults filled by the constructor


def test_proxy_mask_equals_asking_the_profile_per_flow():
    import ipaddress

    from helix_audit.names import _proxy_mask
    from helix_audit.policy.site import SiteProfile

    proxies = (
        (ipaddress.ip_address("10.0.0.3"), 3128),
        (ipaddress.ip_address("10.0.0.3"), 8080),
        (ipaddress.ip_address("fd00::3"), None),
        (ipaddress.ip_address("10.0.0.4"), None),
    )
    site = SiteProfile(proxies=proxies)
    rng = random.Random(7)
    c = Capture()
    addrs = ["10.0.0.3", "10.0.0.4", "fd00::3", "FD00:0::3", "::ffff:10.0.0.3", "10.0.0.5", "not-an-ip"]
    for i in range(200):
        c.flow(rng.choice(CLIENTS), 1000 + i, rng.choice(addrs), rng.choice([3128, 8080, 443]))
    frame = c.frame_df()
    want = [site.is_proxy(a, int(p)) for a, p in zip(frame["resp_h"], frame["resp_p"], strict=True)]
    assert _proxy_mask(frame, site).tolist() == want and any(want) and not all(want)


def test_dns_evidence_with_no_lookup_of_any_finding_name():
    c = _lookups(random.Random(3))
    finding = dataclasses.replace(_finding(random.Random(1), c), hostname="never.example", evidence=())
    assert with_dns_evidence([finding], c.obs) == [finding] == reference.with_dns_evidence([finding], c.obs)
    assert with_dns_evidence([finding], []) == [finding]


def test_observed_flow_ids_equal_the_per_subset_reading():
    """Observed reads each concrete type's flow ids once and serves every subset from them (in
    whatever order the subsets are asked); an observation without an id is found by its 5-tuple."""
    from helix_audit.model import TlsAlert
    from helix_audit.policy.observed import observation_flows

    rng = random.Random(11)
    c = Capture()
    kinds = [TlsClientHello, HttpRequest, WebSocketUpgrade, HttpConnect, TlsAlert]
    for i in range(300):
        fid = c.flow(f"10.0.{i % 7}.{i % 5}", 40000 + i, "192.0.2.9", 443)
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(kinds)
            fields: dict[str, object] = {"host": "a.example", "path": "/", "method": "GET"}
            if kind is TlsClientHello:
                fields = {"sni": "a.example"}
            elif kind is TlsAlert:
                fields = {"level": "fatal", "description": "handshake_failure"}
            elif kind is HttpConnect:
                fields["target"] = "b.example:443"
            obs = c.add(kind, fid, **fields)
            if rng.random() < 0.2:  # no id: found by its 5-tuple
                c.obs[-1] = dataclasses.replace(obs, flow_id=None)
    subsets = [
        (TlsClientHello, HttpRequest),
        (TlsClientHello,),
        (WebSocketUpgrade,),
        (HttpRequest,),
        (HttpConnect, TlsAlert),
        (TlsAlert, HttpConnect),
        (HttpConnect,),
        (TlsAlert,),
        (DnsQuery,),
    ]
    frame = c.frame_df()
    for _ in range(4):
        rng.shuffle(subsets)
        seen = Observed(frame, c.obs)
        for types in subsets:
            assert seen.flow_ids(*types) == observation_flows(frame, seen.of(*types)), types
    assert None not in Observed(frame, c.obs).flow_ids(TlsClientHello, HttpRequest, TlsAlert)


def test_inbound_one_flow_drafts_equal_the_row_by_row_path():
    """A one-flow inbound group's draft, from bulk-read values, is the row-by-row one."""
    from helix_audit.policy.flowfind import _INBOUND_KEYS, _inbound, inbound_drafts
    from helix_audit.policy.flowrows import group_positions

    rng = random.Random(5)
    n = 400
    frame = pd.DataFrame(
        {
            "orig_h": [rng.choice(["10.0.0.1", "10.0.0.2", "fd00::9", None]) for _ in range(n)],
            "orig_p": [rng.randint(1, 65535) for _ in range(n)],
            "resp_h": [rng.choice(["10.0.1.5", "10.0.1.6", "fd00::1:5"]) for _ in range(n)],
            "resp_p": [rng.choice([22, 80, 443, 8080]) + rng.randint(0, 40) for _ in range(n)],
            "transport": [rng.choice(["tcp", "udp"]) for _ in range(n)],
            "confidence": [rng.choice(["low", "high", "medium"]) for _ in range(n)],
            "explanation": [rng.choice([None, "", "legacy port", float("nan")]) for _ in range(n)],
            "conn_state": [rng.choice(["S0", "REJ", "SF", None]) for _ in range(n)],
            "rule": [rng.choice([None, "cp-api", float("nan")]) for _ in range(n)],
            "orig_component": [rng.choice(["other", "control_plane"]) for _ in range(n)],
            "target_port": [rng.randint(1, 9000) for _ in range(n)],
            "hostname": [rng.choice([None, "a.example"]) for _ in range(n)],
        }
    )
    state = np.array([rng.choice(["attempted", "accepted"]) for _ in range(n)], dtype=object)
    cols = Columns(frame, {"state": state})
    mask = np.array([rng.random() < 0.8 for _ in range(n)])
    groups = group_positions(cols, _INBOUND_KEYS, mask)
    assert {len(g) for g in groups} >= {1, 2}
    got = inbound_drafts(cols, mask)
    want = [_inbound(FlowRows(cols, pos).first(), FlowRows(cols, pos)) for pos in groups]

    def plain(d: object) -> tuple[object, ...]:
        fields = {f.name: getattr(d, f.name) for f in dataclasses.fields(d)}  # type: ignore[arg-type]
        rows = fields.pop("rows")
        return (tuple(sorted(fields.items(), key=lambda kv: kv[0])), rows.pos.tolist())

    assert [plain(d) for d in got] == [plain(d) for d in want]


def test_observed_rows_equal_the_index_lookup():
    """Flow ids are row positions when the flow stage numbered the table (no hashing); any other
    table (reordered, gaps, another dtype, empty) is looked up as a pandas Index would."""
    rng = random.Random(5)
    c = Capture()
    for i in range(40):
        c.flow(f"10.0.0.{i % 9}", 40000 + i, "192.0.2.9", 443)
    base = c.frame_df()
    tables = {
        "numbered": base,
        "reordered": base.iloc[rng.sample(range(len(base)), len(base))].reset_index(drop=True),
        "gaps": base.assign(flow_id=base["flow_id"] * 3 + 1),
        "floats": base.assign(flow_id=base["flow_id"].astype(float)),
        "empty": base.iloc[:0],
    }
    for name, frame in tables.items():
        seen = Observed(frame, [])
        for _ in range(3):
            fids = [rng.randrange(-3, 130) for _ in range(rng.randrange(0, 60))]
            want = pd.Index(frame["flow_id"].to_numpy()).get_indexer(fids)
            assert seen.rows(fids).tolist() == want.tolist(), name
