"""Name attribution: which host name each flow went to, and from which evidence.

Evidence, best first: for a flow through a proxy (its responder is a profile proxy, or it carries
a CONNECT or absolute-URI request) the CONNECT / absolute-URI target, then the TLS SNI inside the
tunnel; never the proxy's own DNS name. For a direct flow: TLS SNI, WebSocket upgrade Host, HTTP
Host, then DNS: the responder address was in an A/AAAA answer delivered to the flow's originator
*before* the flow began (nearest in time wins; ``pandas.merge_asof``, vectorised). When the
originator received no such answer (its resolver sits behind a local forwarder we did not capture)
an answer delivered to any host is used. Answers carry their CNAME chain: the queried name and
every alias are candidate names; the queried name is the hostname.

Added columns: ``hostname`` (str or None), ``name_source`` (sni | http_host | connect | websocket |
dns_answer | none), ``names`` (tuple of every candidate name), ``proxied`` (bool) and
``target_port`` (the CONNECT / absolute-URI port for proxied flows, else ``resp_p``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple, cast
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from .model import DnsResponse, HttpConnect, HttpRequest, Observation, TlsClientHello, WebSocketUpgrade
from .policy.flowcodes import dense_codes, factorized, store
from .policy.observed import Observed, observed
from .policy.site import parse_ip

if TYPE_CHECKING:
    from .policy.site import SiteProfile

NAME_SOURCES = ("sni", "http_host", "connect", "websocket", "dns_answer", "none")


#: per flow: every (source, name) its own observations carry, first seen per source, in order
Found = dict[int, tuple[tuple[str, str], ...]]


class _Proxy:
    """What proxy requests add per flow: the first target port (flows absent: none seen)."""

    __slots__ = ("ports",)

    def __init__(self) -> None:
        self.ports: dict[int, int] = {}


@lru_cache(maxsize=1 << 16)  # names repeat: one parse per distinct text
def clean_name(name: str | None) -> str | None:
    """Lower-case, no trailing dot, no port (``Host: a.example:8080`` -> ``a.example``)."""
    if not name:
        return None
    name = name.strip().lower()
    if name.startswith("["):
        return name[1:].partition("]")[0] or None
    if name.count(":") == 1:
        name = name.split(":")[0]
    return name.rstrip(".") or None


class CleanNames(dict[str | None, str | None]):
    """text -> ``clean_name(text)``, each text cleaned once: a local memo for loops over 10^5
    observations (a dict hit is cheaper than the ``lru_cache`` call)."""

    def __missing__(self, text: str | None) -> str | None:
        name = self[text] = clean_name(text)
        return name


def split_target(target: str) -> tuple[str | None, int | None]:
    """``host:port`` (CONNECT target) -> (host, port)."""
    parts = urlsplit("//" + target.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return clean_name(parts.hostname), port


def attribute(
    flows: pd.DataFrame, observations: Sequence[Observation] | Observed, site: SiteProfile | None = None
) -> pd.DataFrame:
    """A copy of ``flows`` with hostname, name_source, names, proxied and target_port added.

    Evidence repeats (many flows, few destinations): each flow gets a code for its direct names
    and one for its DNS answer chain, and :func:`_choose` runs once per distinct combination.
    """
    seen = observed(flows, observations)
    out = flows.copy(deep=False)  # copy-on-write: the new columns never reach ``flows``
    n = len(flows)
    direct, proxy = _direct_names(seen)
    rows = seen.rows(list(direct))  # a scan's flows: no names, nothing to look up
    kept = rows >= 0
    found_code = np.zeros(n, dtype=np.int64)  # index in ``kinds`` (0: no direct name)
    kinds: dict[tuple[tuple[str, str], ...], int] = {(): 0}
    codes = [kinds.setdefault(found, len(kinds)) for found in direct.values()]
    found_code[rows[kept]] = np.asarray(codes, dtype=np.int64)[kept]
    target = np.zeros(n, dtype=np.int64)
    proxied = _proxy_mask(flows, site)
    if proxy.ports:
        at = seen.rows(list(proxy.ports))
        target[at[at >= 0]] = np.asarray(list(proxy.ports.values()), dtype=np.int64)[at >= 0]
        proxied[at[at >= 0]] = True
    chain_code, chains = _dns_chains(flows, seen)
    key = (found_code * (len(chains) + 1) + chain_code + 1) * 2 + proxied
    inverse, uniq = _combinations(key)
    found_of = list(kinds)
    choices = np.empty((len(uniq), 3), dtype=object)
    for i, k in enumerate(uniq.tolist()):
        combo, is_proxy = divmod(k, 2)
        f, c = divmod(combo, len(chains) + 1)
        chain = chains[c - 1] if c else ()
        choices[i, 0], choices[i, 1], choices[i, 2] = _choose(
            dict(found_of[f]), bool(is_proxy), chain[0] if chain else None, chain
        )
    del found_code, chain_code, key
    inverse = inverse.reshape(-1)
    store(out, "hostname", choices[inverse, 0])
    # one source text per combination, taken per flow: the text column without per-row inference
    if n:
        store(out, "name_source", pd.array(choices[:, 1], dtype="str").take(inverse))
    else:
        out["name_source"] = np.full(0, "none", dtype=object)
    store(out, "names", choices[inverse, 2])
    del inverse
    store(out, "proxied", proxied)
    ports = flows["resp_p"]
    if ports.dtype == np.int64 and not (proxied & (target > 0)).any():
        out["target_port"] = ports  # the responder port everywhere: the column itself, shared
    else:
        store(out, "target_port", np.where(proxied & (target > 0), target, ports.to_numpy(dtype=np.int64)))
    return out


def _combinations(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the flows' evidence combinations and the distinct ones (their order does not
    matter): counted in a table when the keys are small (a scan: every flow has none), else hashed."""
    if key.shape[0] > 1 << 16 and key.min() >= 0 and key.max() < 1 << 20:
        return dense_codes(key, int(key.max()) + 1)
    return pd.factorize(key)


_DIRECT_ORDER = ("sni", "websocket", "http_host")
_PROXY_ORDER = ("connect", "http_host", "sni", "websocket")


def _choose(
    found: dict[str, str], proxied: bool, dns_name: str | None, dns_names: tuple[str, ...]
) -> tuple[str | None, str, tuple[str, ...]]:
    if proxied and "absolute" in found:
        found = {**found, "http_host": found["absolute"]}
    order = _PROXY_ORDER if proxied else _DIRECT_ORDER
    source = next((s for s in order if s in found), None)
    cands = list(dict.fromkeys(v for k, v in found.items() if k != "absolute"))
    if not proxied and dns_name:
        cands += [n for n in dns_names if n not in cands]
        if source is None:
            return dns_name, "dns_answer", tuple(cands)
    if source is None:
        return None, "none", tuple(cands)
    host = found[source]
    return host, source, tuple([host] + [c for c in cands if c != host])


def _direct_names(seen: Observed) -> tuple[Found, _Proxy]:
    """The names each flow's own observations carry, and the proxy targets' ports.

    A flow's names are a tuple of (source, name) pairs, extended when a new source appears: the
    common flow (one TLS ClientHello or one WebSocket upgrade) costs one tuple, and the tuple is
    the key :func:`attribute` groups flows by."""
    found: Found = {}
    proxy = _Proxy()
    wanted = (TlsClientHello, HttpRequest)
    clean = CleanNames()
    ids: list[int | None] = []  # the flow ids, read in this pass (kept for the readers after)
    for obs in seen.of(*wanted):
        fid = obs.flow_id
        if fid is None:
            fid = seen.flow_of(obs)
        ids.append(fid)
        if fid is None:
            continue
        kind = type(obs)
        if kind is TlsClientHello:  # the common cases inline: one name, one source
            _add(found, fid, "sni", clean[obs.sni])
        elif kind is WebSocketUpgrade and obs.path[:1] == "/":  # origin-form: not via a proxy
            _add(found, fid, "websocket", clean[obs.host])
        else:
            _note(found, proxy, fid, obs)
    seen.remember(wanted, ids)
    return found, proxy


def _add(found: Found, fid: int, source: str, name: str | None) -> None:
    """``name`` from ``source`` for flow ``fid``, unless empty or the source already named it."""
    if not name:
        return
    have = found.get(fid)
    if have is None:
        found[fid] = ((source, name),)
    elif all(s != source for s, _ in have):
        found[fid] = (*have, (source, name))


def _note(found: Found, proxy: _Proxy, fid: int, obs: Observation) -> None:
    if isinstance(obs, TlsClientHello):
        _add(found, fid, "sni", clean_name(obs.sni))
    elif isinstance(obs, HttpConnect):
        host, port = split_target(obs.target or obs.path)
        _add(found, fid, "connect", host)
        proxy.ports.setdefault(fid, port or 443)
    elif isinstance(obs, HttpRequest):
        if obs.path[:8].lower().startswith(_ABSOLUTE):
            parts = urlsplit(obs.path)
            _add(found, fid, "absolute", clean_name(parts.hostname))
            proxy.ports.setdefault(fid, _url_port(parts))
        source = "websocket" if isinstance(obs, WebSocketUpgrade) else "http_host"
        _add(found, fid, source, clean_name(obs.host))


_ABSOLUTE = ("http://", "https://", "ws://", "wss://")


def _url_port(parts: object) -> int:
    try:
        port = parts.port  # type: ignore[attr-defined]
    except ValueError:
        port = None
    return port or (443 if parts.scheme in ("https", "wss") else 80)  # type: ignore[attr-defined]


def _proxy_mask(flows: pd.DataFrame, site: SiteProfile | None) -> np.ndarray:
    """Per flow: is its responder a profile proxy? (asked once per distinct address and port)"""
    if site is None or not site.proxies or flows.empty:
        return np.zeros(len(flows), dtype=bool)
    addr, addrs = factorized(flows["resp_h"])  # a Categorical's own codes: no hashing
    port = flows["resp_p"].to_numpy(dtype=np.int64)
    if (addr >= 0).all():  # the profile's few proxies against each distinct address
        return _proxy_hits(site, addr, cast("list[str]", addrs), port)  # address texts
    span = int(port.max()) + 1
    pairs, inverse = np.unique(addr.astype(np.int64) * span + port, return_inverse=True)
    hits = [site.is_proxy(addrs[k // span], k % span) for k in pairs.tolist()]
    return np.asarray(hits, dtype=bool)[inverse.reshape(-1)]


def _proxy_hits(site: SiteProfile, addr: np.ndarray, addrs: list[str], port: np.ndarray) -> np.ndarray:
    """:meth:`SiteProfile.is_proxy` of each (address code, port): each distinct address is
    compared with the proxies once, the ports as arrays."""
    any_port = np.zeros(len(addrs), dtype=bool)
    on_port: list[tuple[int, int]] = []
    for i, text in enumerate(addrs):
        ip = parse_ip(text)
        for proxy, proxy_port in site.proxies:
            if ip == proxy:
                if proxy_port is None:
                    any_port[i] = True
                else:
                    on_port.append((i, proxy_port))
    hits = any_port[addr]
    for i, proxy_port in on_port:
        hits |= (addr == i) & (port == proxy_port)
    return hits


# --- DNS answers ------------------------------------------------------------------------------


class _Answers(NamedTuple):
    """The successful plain-DNS responses' address records as rows, one per (response, address),
    in list order. Record sets repeat (many clients resolve the same names): each distinct one's
    (address, chain) pairs are listed once, and a row is a (response, pair)."""

    ts: np.ndarray  # per row
    clients: list[str]  # per response kept
    response: np.ndarray  # per row: its response (index into ``clients``)
    pair: np.ndarray  # per row: its (address, chain) pair (index into ``addresses``, ``chain``)
    addresses: list[str]  # per distinct pair
    chain: np.ndarray  # per distinct pair: index into ``chains``
    chains: list[tuple[str, ...]]


def _answers(responses: Sequence[DnsResponse]) -> _Answers:
    """:class:`_Answers` of ``responses``: three appends a response, the rows spelled out with numpy
    (and the codes :func:`_dns_chains` gives addresses and clients, once per distinct one)."""
    ts: list[float] = []
    clients: list[str] = []
    entries: list[int] = []  # per response kept: its record set's index in ``firsts``
    firsts: list[int] = []  # per distinct record set: its first pair's index
    addresses: list[str] = []
    chain_ids: list[int] = []
    chain_id: dict[tuple[str, ...], int] = {}
    known: dict[tuple[object, ...], int] = {}  # answers repeat: walk each record set once
    for obs in responses:
        answers = obs.answers
        if not answers or obs.rcode != "NOERROR" or obs.protocol != "dns":
            continue
        if len(answers) == 1:  # one record: its chain is its own name, whatever the question
            one = answers[0]
            key: tuple[object, ...] = (one.name, one.rtype, one.data)
        else:
            key = (obs.qname, *((a.name, a.rtype, a.data) for a in answers))
        found = known.get(key)
        if found is None:
            found = known[key] = len(firsts)
            firsts.append(len(addresses))
            for addr, chain in _chains(obs):
                addresses.append(addr)
                chain_ids.append(chain_id.setdefault(chain, len(chain_id)))
        ts.append(obs.ts)
        clients.append(obs.dst)
        entries.append(found)
    first = np.asarray([*firsts, len(addresses)], dtype=np.int64)
    entry = np.asarray(entries, dtype=np.int64)
    sizes = (first[1:] - first[:-1])[entry]  # rows per response kept
    response = np.repeat(np.arange(entry.shape[0]), sizes)
    # a row's pair: its record set's first pair plus the row's place among its response's rows
    pair = first[entry][response] + np.arange(response.shape[0]) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return _Answers(
        np.asarray(ts, dtype=float)[response],
        clients,
        response,
        pair,
        addresses,
        np.asarray(chain_ids, dtype=np.int64),
        list(chain_id),
    )


def _chains(resp: DnsResponse) -> list[tuple[str, tuple[str, ...]]]:
    parents: dict[str, list[str]] = {}
    for ans in resp.answers:
        if ans.rtype == "CNAME":
            parents.setdefault(clean_name(ans.data) or "", []).append(clean_name(ans.name) or "")
    qname = clean_name(resp.qname)
    out = []
    for ans in resp.answers:
        if ans.rtype not in ("A", "AAAA"):
            continue
        chain = _walk_up(clean_name(ans.name) or "", parents)
        if qname in chain:
            chain = [qname] + [n for n in chain if n != qname]
        out.append((_canon(ans.data), tuple(chain)))
    return out


def _walk_up(name: str, parents: dict[str, list[str]]) -> list[str]:
    """``name`` and every alias pointing to it, root (the queried name) first; loop-safe."""
    seen = [name]
    frontier = [name]
    while frontier:
        nxt = [p for n in frontier for p in parents.get(n, []) if p not in seen]
        seen += nxt
        frontier = nxt
    return list(reversed(seen))


@lru_cache(maxsize=1 << 16)
def _canon(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr.strip()))
    except ValueError:
        return addr.strip()


def _dns_chains(flows: pd.DataFrame, seen: Observed) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per flow, the CNAME chain (index into the returned list; -1: none) of the latest answer
    naming its responder delivered to its originator at or before the flow began, else to anyone.

    ``merge_asof(by=...)`` as integer arithmetic: addresses and clients become codes, times
    become ranks, and one ``searchsorted`` finds the latest answer per flow.
    """
    n = len(flows)
    found = _answers(seen.of(DnsResponse))
    chains = found.chains
    none = np.full(n, -1, dtype=np.int64)
    if found.ts.shape[0] == 0 or n == 0:
        return none, chains
    f_ts = flows["first_ts"].to_numpy(dtype=float)
    # the flows' addresses are coded already (one code space for both columns; -1: missing, which
    # no answer names); the answers' addresses and clients join that space, new ones after it, each
    # distinct one looked up once
    f_client_c, f_addr_c, addresses = seen.codes.hosts()
    code_of = {a: i for i, a in enumerate(addresses)}
    pair_c = np.fromiter((code_of.setdefault(a, len(code_of)) for a in found.addresses), np.int64)
    a_addr_c = pair_c[found.pair]
    client_of, clients = pd.factorize(np.asarray(found.clients, dtype=object), use_na_sentinel=False)
    client_c = np.fromiter((code_of.setdefault(c, len(code_of)) for c in clients.tolist()), np.int64)
    a_client_c = client_c[client_of][found.response]
    span = len(code_of) + 1  # a missing address: code span - 1, which no answer has
    f_addr_c, f_client_c = (np.where(c < 0, span - 1, c).astype(np.int64) for c in (f_addr_c, f_client_c))
    # times as ranks among the answers' distinct times; a flow's rank: the last answer time at or
    # before its own (-1: none), so that answer <= flow is rank <= rank
    times, a_rank = np.unique(found.ts, return_inverse=True)
    f_rank = np.searchsorted(times, f_ts, side="right") - 1
    a_rank = a_rank.reshape(-1)
    own = _latest(a_addr_c * span + a_client_c, a_rank, f_addr_c * span + f_client_c, f_rank)
    anyone = _latest(a_addr_c, a_rank, f_addr_c, f_rank)
    best = np.where(own >= 0, own, anyone)
    a_chain = found.chain[found.pair]
    return np.where(best >= 0, a_chain[np.maximum(best, 0)], none), chains


def _latest(a_group: np.ndarray, a_rank: np.ndarray, f_group: np.ndarray, f_rank: np.ndarray) -> np.ndarray:
    """Per flow, the answer row with the flow's group and the greatest rank <= the flow's (the
    last in row order among equals), or -1."""
    groups, a_g = np.unique(a_group, return_inverse=True)
    a_g = a_g.reshape(-1)
    f_g = np.searchsorted(groups, f_group)
    f_g[f_g == groups.shape[0]] = 0
    known = groups[f_g] == f_group
    span = int(max(a_rank.max(), f_rank.max())) + 1
    a_key = a_g.astype(np.int64) * span + a_rank
    order = np.argsort(a_key, kind="stable")
    pos = np.searchsorted(a_key[order], f_g.astype(np.int64) * span + f_rank, side="right") - 1
    hit = known & (pos >= 0)
    hit[hit] &= a_g[order[pos[hit]]] == f_g[hit]
    return np.where(hit, order[np.maximum(pos, 0)], -1)
