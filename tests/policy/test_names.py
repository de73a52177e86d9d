"""Name attribution: evidence order, DNS answers before the flow from the host's resolver."""

from __future__ import annotations

from helix_audit.model import DnsAnswer, TlsClientHello
from helix_audit.names import attribute

from .factory import Capture

HOST, OTHER, DNS = "10.0.1.5", "10.0.1.9", "10.0.0.53"


def test_nearest_earlier_answer_to_the_same_host_wins():
    c = Capture()
    c.resolve(HOST, DNS, "old.example", "192.0.2.10", t=0)
    c.resolve(OTHER, DNS, "someone-else.example", "192.0.2.10", t=2)
    c.resolve(HOST, DNS, "new.example", "192.0.2.10", t=3)
    flow = c.flow(HOST, 5000, "192.0.2.10", 443, t=4)
    c.resolve(HOST, DNS, "later.example", "192.0.2.10", t=5)  # after the flow: not evidence
    early = c.flow(HOST, 5001, "192.0.2.10", 443, t=1)
    out = attribute(c.frame_df(), c.obs).set_index("flow_id")
    assert (out.loc[flow, "hostname"], out.loc[flow, "name_source"]) == ("new.example", "dns_answer")
    assert out.loc[early, "hostname"] == "old.example"


def test_cname_chain_names_and_sni_precedence():
    c = Capture()
    answers = (
        DnsAnswer("www.example.com", "CNAME", 60, "edge.cdn.net"),
        DnsAnswer("edge.cdn.net", "CNAME", 60, "e1.cdn.net"),
        DnsAnswer("e1.cdn.net", "A", 20, "192.0.2.20"),
    )
    c.lookup(HOST, DNS, "www.example.com", t=0, answers=answers)
    dns_only = c.flow(HOST, 5000, "192.0.2.20", 443, t=1)
    with_sni = c.flow(HOST, 5001, "192.0.2.20", 443, t=2)
    c.add(TlsClientHello, with_sni, sni="Other.Example.")
    raw = c.flow(HOST, 5002, "192.0.2.99", 443, t=3)
    out = attribute(c.frame_df(), c.obs).set_index("flow_id")
    assert out.loc[dns_only, "names"] == ("www.example.com", "edge.cdn.net", "e1.cdn.net")
    assert (out.loc[with_sni, "hostname"], out.loc[with_sni, "name_source"]) == ("other.example", "sni")
    assert (out.loc[raw, "hostname"], out.loc[raw, "name_source"], out.loc[raw, "names"]) == (
        None,
        "none",
        (),
    )


def test_failed_and_other_record_answers_do_not_name():
    c = Capture()
    c.lookup(HOST, DNS, "gone.example", t=0, rcode="NXDOMAIN")
    c.lookup(
        HOST, DNS, "txt.example", t=0, qtype="TXT", answers=(DnsAnswer("txt.example", "TXT", 60, "v=1"),)
    )
    fid = c.flow(HOST, 5000, "192.0.2.30", 443, t=1)
    assert attribute(c.frame_df(), c.obs).loc[fid, "name_source"] == "none"


def test_a_flow_with_a_missing_address_is_named_only_by_an_answer_to_anyone():
    """A missing originator is no client: no answer is its own, an answer to anyone still names
    the responder; a missing responder is named by none."""
    c = Capture()
    c.resolve(HOST, DNS, "a.example", "192.0.2.10", t=0)
    c.resolve(OTHER, DNS, "b.example", "192.0.2.11", t=1)
    c.resolve(HOST, DNS, "c.example", "192.0.2.11", t=2)
    no_orig = c.flow(HOST, 5000, "192.0.2.11", 443, t=3)
    no_resp = c.flow(HOST, 5001, "192.0.2.10", 443, t=3)
    own = c.flow(OTHER, 5002, "192.0.2.11", 443, t=3)
    c.rows[no_orig]["orig_h"] = None
    c.rows[no_resp]["resp_h"] = None
    out = attribute(c.frame_df(), c.obs).set_index("flow_id")
    assert out.loc[no_orig, "hostname"] == "c.example"  # the latest answer to anyone
    assert out.loc[no_resp, "name_source"] == "none"
    assert out.loc[own, "hostname"] == "b.example"  # its own answer, though c.example is later
