"""Name attribution: evidence order, DNS answers before the flow from the host's resolver."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helix_audit.model import DnsAnswer, HttpConnect, TlsClientHello
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
    assert pd.isna(out.loc[raw, "hostname"])  # a Categorical's missing value
    assert (out.loc[raw, "name_source"], out.loc[raw, "names"]) == ("none", ())


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


def test_name_columns_are_small_and_target_port_shares_or_keeps_resp_p_type():
    """hostname / name_source are Categoricals of the texts used (ascending, as few_texts gives);
    target_port is resp_p itself without proxy targets, else resp_p's own integer type."""
    c = Capture()
    plain = c.flow(HOST, 5000, "192.0.2.20", 443, t=1)
    c.add(TlsClientHello, plain, sni="b.example")
    other = c.flow(HOST, 5001, "192.0.2.21", 443, t=2)
    c.add(TlsClientHello, other, sni="a.example")
    bare = c.flow(HOST, 5002, "192.0.2.22", 80, t=3)
    flows = c.frame_df()
    flows["resp_p"] = flows["resp_p"].astype(np.int32)
    out = attribute(flows, c.obs)
    for name in ("hostname", "name_source"):
        assert isinstance(out[name].dtype, pd.CategoricalDtype)
        cats = out[name].cat.categories.tolist()
        assert cats == sorted(set(out[name].dropna()))
    assert out["hostname"].tolist()[:2] == ["b.example", "a.example"] and pd.isna(out["hostname"][bare])
    assert isinstance(out["names"].dtype, pd.CategoricalDtype)  # of tuples, codes a byte a flow
    assert out["names"].tolist() == [("b.example",), ("a.example",), ()]
    assert np.shares_memory(out["target_port"].to_numpy(), flows["resp_p"].to_numpy())
    tunnel = c.flow(HOST, 5003, "192.0.2.30", 3128, t=4)
    c.add(HttpConnect, tunnel, method="CONNECT", host="", path="", target="c.example:8443")
    flows = c.frame_df()
    flows["resp_p"] = flows["resp_p"].astype(np.int32)
    out = attribute(flows, c.obs)
    assert out["target_port"].dtype == np.int32
    assert out["target_port"].tolist() == [443, 443, 80, 8443]
    assert out["proxied"].tolist() == [False, False, False, True]
    assert out.loc[tunnel, ["hostname", "name_source"]].tolist() == ["c.example", "connect"]
    assert flows["resp_p"].tolist() == [443, 443, 80, 3128]  # the input's column is untouched


def test_attribute_equals_choose_per_flow_with_many_combinations():
    """The packed per-flow combination keys (int16 here: ~150 name kinds times the DNS chains,
    times proxied) give each flow what :func:`_choose` gives it from its own evidence."""
    import random

    from helix_audit.dnsanswers import dns_chains as _dns_chains
    from helix_audit.names import _choose, _direct_names
    from helix_audit.policy.observed import Observed

    rng = random.Random(11)
    c = Capture()
    servers = [f"192.0.2.{i}" for i in range(1, 40)]
    for i, addr in enumerate(servers[:30]):
        c.resolve(HOST, DNS, f"n{i}.example", addr, t=i * 0.01, cname=f"c{i}.cdn.example" if i % 3 else None)
    for i in range(400):
        fid = c.flow(rng.choice([HOST, OTHER]), 6000 + i, rng.choice(servers), rng.choice([443, 80]), t=1 + i)
        kind = rng.random()
        if kind < 0.4:
            c.add(TlsClientHello, fid, sni=f"s{rng.randrange(150)}.example")
        elif kind < 0.5:
            c.add(
                HttpConnect,
                fid,
                method="CONNECT",
                host="",
                path="",
                target=f"t{i % 7}.example:{8000 + i % 5}",
            )
    flows = c.frame_df()
    out = attribute(flows, c.obs)
    direct, proxy = _direct_names(Observed(flows, c.obs))
    chain_code, chains = _dns_chains(flows, Observed(flows, c.obs))
    assert chain_code.dtype == np.int32 and (chain_code >= 0).any() and len(direct) > 150
    for row, fid in enumerate(flows["flow_id"].tolist()):
        chain = chains[chain_code[row]] if chain_code[row] >= 0 else ()
        is_proxy = fid in proxy.ports
        host, source, names = _choose(dict(direct.get(fid, ())), is_proxy, chain[0] if chain else None, chain)
        got = out.iloc[row]
        assert (None if pd.isna(got["hostname"]) else got["hostname"]) == host
        assert (got["name_source"], got["names"], bool(got["proxied"])) == (source, names, is_proxy)
        assert got["target_port"] == (proxy.ports[fid] if is_proxy else flows["resp_p"][row])
