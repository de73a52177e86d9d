"""Classification scenarios on flow tables and observations shaped like the pipeline's output."""

from __future__ import annotations

import pytest

from helix_audit.model import (
    DnsAnswer,
    HttpConnect,
    HttpRequest,
    Severity,
    TlsAlert,
    TlsClientHello,
    WebSocketUpgrade,
)
from helix_audit.names import attribute
from helix_audit.policy.classify import classify
from helix_audit.policy.rules import load_rules
from helix_audit.policy.site import SiteProfile, load_site

from .factory import Capture

SB, SB2, CP, DNS, PROXY = "10.0.1.5", "10.0.1.6", "10.0.0.2", "10.0.0.53", "10.0.0.3"
RULES = load_rules()


@pytest.fixture
def site(tmp_path) -> SiteProfile:
    path = tmp_path / "site.yaml"
    path.write_text(
        "control_plane:\n  addresses: [10.0.0.2]\n  names: [helix.example.com]\n"
        "sandboxes:\n  addresses: [10.0.1.0/24]\ndns_servers: [10.0.0.53]\nproxies: ['10.0.0.3:3128']\n"
        "llm_providers: [openai]\noptional: [package-managers]\n"
    )
    return load_site(path, RULES)


def channels(c: Capture, src: str = SB, port: int = 8080, t: float = 0.0) -> None:
    for i, path in enumerate(
        ("/api/v1/revdial?runnerid=hydra-1", "/api/v1/external-agents/sync?session_id=ses_1")
    ):
        fid = c.flow(src, 50100 + i, CP, port, t=t + i, duration=600)
        c.add(
            WebSocketUpgrade,
            fid,
            method="GET",
            host=f"helix.example.com:{port}",
            path=path,
            version="HTTP/1.1",
            accepted=True,
            status=101,
        )


def tls(c: Capture, src: str, dst: str, name: str, *, t: float, state: str = "SF", port: int = 443) -> int:
    fid = c.flow(src, 52000 + len(c.rows), dst, port, t=t, state=state)
    if state in ("SF", "S1", "RSTR"):
        c.add(TlsClientHello, fid, sni=name, version="TLS 1.3", alpn=("h2",))
    return fid


def kinds(result) -> list[tuple[str, str]]:
    return sorted((f.kind, f.hostname or f.dst) for f in result.findings)


def test_compliant_sandbox_has_no_findings_and_full_runtime_coverage(site):
    c = Capture()
    channels(c, port=443)
    c.rows[0]["key_frames"] = "1,2,4"
    for fid in (0, 1):  # wss: the TLS is what the wire shows
        c.add(TlsClientHello, fid, sni="helix.example.com")
    c.resolve(SB, DNS, "registry.helixml.tech", "203.0.113.10", t=5)
    reg = tls(c, SB, "203.0.113.10", "registry.helixml.tech", t=6)
    c.resolve(
        SB,
        DNS,
        "helix-registry-europe.s3.eu-west-2.amazonaws.com",
        "52.95.148.1",
        t=7,
        cname="s3-r-w.eu-west-2.amazonaws.com",
    )
    s3 = c.flow(SB, 53000, "52.95.148.1", 443, t=8)  # named by DNS only (through the CNAME chain)
    result = classify(c.frame_df(), c.obs, RULES, site)
    assert result.findings == []
    flows = result.flows.set_index("flow_id")
    assert flows.loc[reg, "verdict"] == "allowed" and flows.loc[reg, "rule"] == "sb-install-registry"
    assert flows.loc[s3, "name_source"] == "dns_answer" and flows.loc[s3, "rule"] == "sb-install-s3"
    assert flows.loc[s3, "hostname"] == "helix-registry-europe.s3.eu-west-2.amazonaws.com"
    assert "names" not in flows  # internal: names.attribute's, not kept in the classified table
    named = attribute(c.frame_df(), c.obs, site).set_index("flow_id")
    assert "s3-r-w.eu-west-2.amazonaws.com" in named.loc[s3, "names"]
    assert set(flows["verdict"]) == {"allowed", "infrastructure"}
    status = {(e.rule, e.component): e.status for e in result.coverage}
    assert status[("sb-runtime-control-plane", "sandbox")] == "ok"
    assert status[("sb-install-s3", "sandbox")] == "ok"
    assert status[("sb-install-get", "sandbox")] == "not_seen"
    assert status[("cp-llm-openai", "control_plane")] == "not_seen"
    assert ("cp-llm-anthropic", "control_plane") not in status  # not configured: no coverage row


def test_unexpected_destinations_grouped_with_sources_and_severity(site):
    c = Capture()
    a = tls(c, SB, "198.51.100.7", "evil.example", t=1)
    b = tls(c, SB2, "198.51.100.7", "evil.example", t=2)
    raw = c.flow(SB, 53001, "192.0.2.44", 8443, t=3, state="S0")
    cp_llm = tls(c, CP, "162.159.140.245", "api.anthropic.com", t=4)  # provider not configured
    sb_llm = tls(c, SB, "162.159.140.246", "api.openai.com", t=5)  # control plane row, not sandbox
    git = tls(c, SB, "140.82.121.4", "github.com", t=6)  # optional group not enabled
    up = tls(c, SB, "140.82.121.33", "ghcr.io", t=7)  # upstream notes only
    result = classify(c.frame_df(), c.obs, RULES, site)
    by_dst = {(f.hostname or f.dst): f for f in result.findings}
    evil = by_dst["evil.example"]
    assert evil.kind == "unexpected_destination" and evil.severity is Severity.HIGH
    assert evil.sources == (SB, SB2) and evil.flow_ids == (a, b) and evil.state == "established"
    assert evil.evidence[0].wireshark_filter == "tcp.stream in {0, 1}"
    nameless = by_dst["192.0.2.44"]
    assert (
        nameless.severity is Severity.MEDIUM and nameless.state == "attempted" and nameless.flow_ids == (raw,)
    )
    assert "no name seen" in nameless.message and "S0 x1" in nameless.message
    assert "does not list anthropic" in by_dst["api.anthropic.com"].explanation
    assert (
        by_dst["api.anthropic.com"].flow_ids == (cp_llm,)
        and by_dst["api.anthropic.com"].component == "control_plane"
    )
    assert "control plane only" in by_dst["api.openai.com"].explanation and by_dst[
        "api.openai.com"
    ].flow_ids == (sb_llm,)
    assert "optional group git-providers" in by_dst["github.com"].explanation and by_dst[
        "github.com"
    ].flow_ids == (git,)
    assert by_dst["ghcr.io"].explanation.startswith("used by Helix (upstream notes:")
    assert by_dst["ghcr.io"].explanation.endswith("but not on the published page")
    assert by_dst["ghcr.io"].severity is Severity.MEDIUM and by_dst["ghcr.io"].flow_ids == (up,)
    assert len({f.id for f in result.findings}) == len(result.findings)


def test_upstream_ruleset_enabled_allows_ghcr(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("sandboxes: {addresses: [10.0.1.5]}\nrulesets: [upstream]\n")
    c = Capture()
    tls(c, SB, "140.82.121.33", "ghcr.io", t=1)
    result = classify(c.frame_df(), c.obs, RULES, load_site(path, RULES))
    assert result.findings == [] and result.flows["rule"].iloc[0] == "up-ghcr"


@pytest.mark.parametrize(
    ("state", "answered", "severity"),
    [
        ("SF", "accepted", Severity.CRITICAL),
        ("REJ", "attempted", Severity.HIGH),
        ("S0", "attempted", Severity.HIGH),
    ],
)
def test_inbound_to_sandbox(site, state, answered, severity):
    c = Capture()
    fid = c.flow("10.0.9.9", 40123, SB, 22, state=state)
    c.flow("10.0.9.9", 40124, SB, 22, state=state, t=1)
    result = classify(c.frame_df(), c.obs, RULES, site)
    [finding] = result.findings
    assert (finding.kind, finding.state, finding.severity) == ("inbound_to_sandbox", answered, severity)
    assert finding.dst == SB and finding.dst_port == 22 and finding.flow_ids == (fid, fid + 1)
    assert finding.component == "sandbox" and set(result.flows["verdict"]) == {"inbound"}


@pytest.mark.parametrize(("transport", "port"), [("tcp", 53), ("tcp", 853), ("tcp", 5355), ("udp", 53)])
def test_dns_and_llmnr_ports_towards_a_sandbox_are_inbound_not_infrastructure(tmp_path, transport, port):
    """With no dns_servers a private responder on 53 looks like a resolver; a sandbox never is one."""
    path = tmp_path / "site.yaml"
    path.write_text("control_plane:\n  addresses: [10.0.0.2]\nsandboxes:\n  addresses: [10.0.1.0/24]\n")
    c = Capture()
    c.flow("10.0.9.9", 40123, SB, port, state="S0", transport=transport)
    result = classify(c.frame_df(), c.obs, RULES, load_site(path))
    [finding] = result.findings
    assert finding.kind == "inbound_to_sandbox" and finding.dst_port == port
    assert set(result.flows["verdict"]) == {"inbound"}


def test_inbound_legacy_moonlight_port_explained(site):
    c = Capture()
    c.flow(CP, 40200, SB, 47989, state="SF")
    [finding] = classify(c.frame_df(), c.obs, RULES, site).findings
    assert "Moonlight/Wolf" in finding.explanation and "old install" in finding.message


def test_blocked_install_all_ways(site):
    c = Capture()
    c.resolve(SB, DNS, "registry.helixml.tech", "203.0.113.10", t=0)
    s0 = c.flow(SB, 53100, "203.0.113.10", 443, state="S0", t=1, duration=31.0)
    c.resolve(SB, DNS, "get.helixml.tech", "203.0.113.11", t=40)
    rej = c.flow(SB, 53101, "203.0.113.11", 443, state="REJ", t=41)
    c.resolve(SB, DNS, "helix-registry-europe.s3.eu-west-2.amazonaws.com", "52.95.148.1", t=50)
    icmp = c.flow(
        SB,
        53102,
        "52.95.148.1",
        443,
        state="S0",
        t=51,
        icmp_errors=1,
        icmp_error="unreachable/13",
        icmp_from="10.0.1.1",
        icmp_frames="site.pcap:900",
    )
    nx = c.lookup(CP, DNS, "get.helixml.tech", t=60, rcode="NXDOMAIN")
    result = classify(c.frame_df(), c.obs, RULES, site)
    got = {(f.hostname, f.how): f for f in result.findings}
    assert set(got) == {
        ("registry.helixml.tech", "no_answer"),
        ("get.helixml.tech", "reset"),
        ("helix-registry-europe.s3.eu-west-2.amazonaws.com", "icmp_unreachable"),
        ("get.helixml.tech", "nxdomain"),
    }
    msg = got[("registry.helixml.tech", "no_answer")].message
    assert "SYN sent 6 times over 31 s with no reply: dropped between 10.0.1.5 and 203.0.113.10" in msg
    assert got[("get.helixml.tech", "reset")].flow_ids == (rej,)
    assert (
        "ICMP unreachable/13 from 10.0.1.1"
        in got[("helix-registry-europe.s3.eu-west-2.amazonaws.com", "icmp_unreachable")].message
    )
    dns = got[("get.helixml.tech", "nxdomain")]
    assert dns.component == "control_plane" and dns.flow_ids == () and dns.evidence[0].flow_ids == (nx,)
    assert dns.evidence[0].wireshark_filter == 'dns.qry.name == "get.helixml.tech"'
    assert all(f.kind == "blocked" and f.severity is Severity.MEDIUM for f in result.findings)
    flows = result.flows.set_index("flow_id")
    assert list(flows.loc[[s0, rej, icmp], "verdict"]) == ["blocked"] * 3
    cov = {(e.rule, e.component): (e.status, e.how) for e in result.coverage}
    assert cov[("sb-install-registry", "sandbox")] == ("blocked", "no_answer")
    assert cov[("cp-install-get", "control_plane")] == ("blocked", "nxdomain")


def test_proxy_denied_connect_attributed_to_target(site):
    c = Capture()
    fid = c.flow(SB, 53200, PROXY, 3128, state="SF")
    c.add(
        HttpConnect,
        fid,
        method="CONNECT",
        host="registry.helixml.tech:443",
        path="registry.helixml.tech:443",
        version="HTTP/1.1",
        target="registry.helixml.tech:443",
        status=403,
    )
    result = classify(c.frame_df(), c.obs, RULES, site)
    [finding] = result.findings
    assert (finding.kind, finding.how, finding.hostname, finding.dst_port) == (
        "blocked",
        "proxy_denied",
        "registry.helixml.tech",
        443,
    )
    assert "refused the CONNECT with HTTP 403" in finding.message
    row = attribute(c.frame_df(), c.obs, site).iloc[0]
    assert result.flows.iloc[0][["hostname", "name_source"]].tolist() == ["registry.helixml.tech", "connect"]
    assert (row["hostname"], row["name_source"], row["target_port"], bool(row["proxied"])) == (
        "registry.helixml.tech",
        "connect",
        443,
        True,
    )


def test_tls_alert_blocked_names_the_alert_and_the_table_keeps_only_report_columns(site):
    c = Capture()
    fid = tls(c, SB, "203.0.113.10", "registry.helixml.tech", t=1)
    c.add(TlsAlert, fid, t=0.2, reply=True, level="fatal", description="handshake_failure")
    frame = c.frame_df()
    result = classify(frame, c.obs, RULES, site)
    [finding] = result.findings
    assert (finding.kind, finding.how, finding.rule) == ("blocked", "tls_alert", "sb-install-registry")
    assert "ended with a fatal alert (handshake_failure) from 203.0.113.10" in finding.message
    # the classified table: the flow columns and the policy columns, no internal working columns
    policy = ["hostname", "name_source", "orig_component", "resp_component", "verdict", "rule"]
    assert list(result.flows.columns) == list(frame.columns) + policy
    assert result.flows.iloc[0][["verdict", "rule"]].tolist() == ["blocked", "sb-install-registry"]


def test_proxy_tunnel_to_allowed_and_absolute_uri_to_unlisted(site):
    c = Capture()
    c.resolve(SB, DNS, "proxy.corp.example", PROXY, t=0)  # the proxy's own name must not be used
    ok = c.flow(SB, 53300, PROXY, 3128, t=1)
    c.add(
        HttpConnect,
        ok,
        method="CONNECT",
        host="pypi.org:443",
        path="pypi.org:443",
        version="HTTP/1.1",
        target="pypi.org:443",
        status=200,
    )
    c.add(TlsClientHello, ok, t=0.1, sni="pypi.org")
    bad = c.flow(SB, 53301, PROXY, 3128, t=2)
    c.add(
        HttpRequest,
        bad,
        method="GET",
        host="mirror.ox.ac.uk",
        path="http://mirror.ox.ac.uk/ubuntu/dists/",
        version="HTTP/1.1",
    )
    result = classify(c.frame_df(), c.obs, RULES, site)
    flows = result.flows.set_index("flow_id")
    assert flows.loc[ok, "verdict"] == "allowed" and flows.loc[ok, "rule"] == "opt-pkg-pip"
    named = attribute(c.frame_df(), c.obs, site).set_index("flow_id")
    assert flows.loc[bad, "hostname"] == "mirror.ox.ac.uk" and named.loc[bad, "target_port"] == 80
    [finding] = result.findings
    assert finding.hostname == "mirror.ox.ac.uk" and finding.dst == PROXY and finding.dst_port == 80
    assert "via proxy 10.0.0.3:3128" in finding.message and "Default APT mirror" in finding.explanation


def test_aaaa_refused_then_a_works_is_not_blocked(site):
    c = Capture()
    c.lookup(SB, DNS, "registry.helixml.tech", t=0, qtype="AAAA", rcode="REFUSED", txid=1)
    c.lookup(
        SB,
        DNS,
        "registry.helixml.tech",
        t=0.001,
        qtype="A",
        txid=2,
        answers=(DnsAnswer("registry.helixml.tech", "A", 60, "203.0.113.10"),),
    )
    tls(c, SB, "203.0.113.10", "registry.helixml.tech", t=0.1)
    result = classify(c.frame_df(), c.obs, RULES, site)
    assert result.findings == []


def test_failed_lookup_followed_by_nothing_is_blocked_timeout(site):
    c = Capture()
    c.lookup(SB, DNS, "registry.helixml.tech", t=0, rcode=None)
    c.flow(SB, 1, DNS, 53, transport="udp", t=10)  # the capture runs on
    [finding] = classify(c.frame_df(), c.obs, RULES, site).findings
    assert (finding.kind, finding.how) == ("blocked", "dns_timeout")


def test_dns_to_unlisted_resolver_and_lookup_only(site):
    c = Capture()
    c.lookup(
        SB,
        "8.8.8.8",
        "telemetry.example.net",
        t=0,
        answers=(DnsAnswer("telemetry.example.net", "A", 60, "192.0.2.80"),),
    )
    c.lookup(SB, DNS, "pypi.org", t=1, answers=(DnsAnswer("pypi.org", "A", 60, "151.101.0.223"),))
    c.lookup(SB, DNS, "registry.helixml.tech.corp.example", t=2, rcode="NXDOMAIN")  # search list
    result = classify(c.frame_df(), c.obs, RULES, site)
    got = {f.kind: f for f in result.findings}
    assert set(got) == {"dns_to_unlisted_resolver", "unexpected_destination"}
    resolver = got["dns_to_unlisted_resolver"]
    assert (
        resolver.dst == "8.8.8.8" and resolver.severity is Severity.MEDIUM and "10.0.0.53" in resolver.message
    )
    assert "DNS fallback" in resolver.explanation
    lookup = got["unexpected_destination"]
    assert (lookup.hostname, lookup.state, lookup.severity) == (
        "telemetry.example.net",
        "lookup_only",
        Severity.LOW,
    )


def test_wildcard_rule_matching(tmp_path):
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "ruleset: lab\nenabled_by_default: true\nrules:\n"
        "  - {id: cdn, hostnames: ['*.cdn.example'], ports: [443], transport: tcp, component: sandbox,\n"
        "     phase: runtime, group: core, purpose: CDN, source: lab}\n"
    )
    ruleset = load_rules([rules])
    c = Capture()
    c.flow(SB, 1, CP, 8080)
    c.add(WebSocketUpgrade, 0, method="GET", host="cp", path="/api/v1/revdial", version="HTTP/1.1")
    for name in ("a.cdn.example", "x.y.cdn.example", "cdn.example", "evilcdn.example"):
        tls(c, SB, "192.0.2.1", name, t=1)
    flows = classify(c.frame_df(), c.obs, ruleset, None).flows
    assert list(flows["verdict"].iloc[1:]) == ["allowed", "allowed", "violation", "violation"]


def test_roles_inferred_without_profile_and_other_hosts_at_info():
    c = Capture()
    channels(c)
    c.flow("10.0.5.5", 1, "198.51.100.9", 443, t=3)  # a host with no role
    tls(c, SB, "198.51.100.7", "evil.example", t=4)
    result = classify(c.frame_df(), c.obs, RULES, None)
    roles = {(r.address, r.component, r.source) for r in result.roles}
    assert roles == {(SB, "sandbox", "inferred"), (CP, "control_plane", "inferred")}
    sandbox_role = next(r for r in result.roles if r.component == "sandbox")
    assert "/api/v1/revdial" in sandbox_role.evidence and sandbox_role.frames == (4, 20)
    sev = {(f.kind, f.hostname or f.dst): f.severity for f in result.findings}
    sev.update({(f.kind, f.dst): f.severity for f in result.findings})
    assert sev[("unexpected_destination", "198.51.100.9")] is Severity.INFO
    assert sev[("unexpected_destination", "evil.example")] is Severity.HIGH
    assert sev[("plaintext_control_channel", CP)] is Severity.INFO  # 8080 plain ws is documented


def test_control_plane_recognised_by_name_only(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("control_plane: {names: [helix.example.com]}\nsandboxes: {addresses: [10.0.1.0/24]}\n")
    c = Capture()
    tls(c, SB, "203.0.113.50", "helix.example.com", t=0)
    result = classify(c.frame_df(), c.obs, RULES, load_site(path, RULES))
    cp = next(r for r in result.roles if r.component == "control_plane")
    assert cp.address == "203.0.113.50" and "helix.example.com" in cp.evidence
    assert result.findings == [] and result.flows["rule"].iloc[0] == "sb-runtime-control-plane"


def test_unexpected_websocket_path(site):
    c = Capture()
    for path in ("/api/v1/ws/user?session_id=ses_1", "/api/v1/debug/shell"):
        fid = c.flow(SB, 1 + len(c.rows), CP, 8080)
        c.add(
            WebSocketUpgrade,
            fid,
            method="GET",
            host="helix.example.com",
            path=path,
            version="HTTP/1.1",
            accepted=True,
            status=101,
        )
    result = classify(c.frame_df(), c.obs, RULES, site)
    got = {f.extra["path"]: f for f in result.findings if f.kind == "unexpected_websocket_path"}
    assert (
        got["/api/v1/ws/user"].severity is Severity.LOW
        and "Settings WebSocket" in got["/api/v1/ws/user"].explanation
    )
    assert (
        got["/api/v1/debug/shell"].severity is Severity.MEDIUM
        and got["/api/v1/debug/shell"].explanation is None
    )


def test_infrastructure_never_reported(site):
    c = Capture()
    c.flow("fe80::1", 135, "ff02::1:ff00:5", 0, transport="icmp6", state="OTH")
    c.flow("0.0.0.0", 68, "255.255.255.255", 67, transport="udp")
    c.flow(SB, 5353, "224.0.0.251", 5353, transport="udp")
    c.lookup(SB, DNS, "helix.example.com", t=1, answers=(DnsAnswer("helix.example.com", "A", 60, CP),))
    result = classify(c.frame_df(), c.obs, RULES, site)
    assert result.findings == [] and set(result.flows["verdict"]) == {"infrastructure"}


def test_lookup_drafts_merged_as_made_classify_as_one_draft_per_lookup(site, monkeypatch):
    """Failed lookups of a required name and lookups never followed by a connection are merged
    into their group's draft as they are judged; the findings are those of one draft per lookup
    merged by ``findings.group``."""
    import random

    from helix_audit.policy import dnsfind

    rng = random.Random(3)
    c = Capture()
    names = ["registry.helixml.tech", "get.helixml.tech", "nowhere.example", "Other.Example.", ""]
    for i in range(150):
        client = rng.choice([SB, SB2, CP, "10.0.1.7"])
        rcode = rng.choice(["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", None])
        c.lookup(client, DNS, rng.choice(names), t=i * 7.0, qtype=rng.choice(["A", "AAAA"]), rcode=rcode)
    merged = classify(c.frame_df(), c.obs, RULES, site).findings
    made = iter(range(10**6))
    keyed = dnsfind._group_key
    monkeypatch.setattr(dnsfind, "_group_key", lambda *args: (*keyed(*args), next(made)))  # all apart
    one_each = classify(c.frame_df(), c.obs, RULES, site).findings
    assert merged == one_each
    counts = [f.message for f in merged if f.kind in ("blocked", "unexpected_destination")]
    assert any("Seen" in m for m in counts)
