"""Name attribution: which host name each flow went to, and from which evidence.

Evidence, best first: for a flow through a proxy (its responder is a profile proxy, or it carries
a CONNECT or absolute-URI request) the CONNECT / absolute-URI target, then the TLS SNI inside the
tunnel; never the proxy's own DNS name. For a direct flow: TLS SNI, WebSocket upgrade Host, HTTP
Host, then DNS: the responder address was in an A/AAAA answer delivered to the flow's originator
*before* the flow began (nearest in time wins; ``pandas.merge_asof``, vectorised). When the
originator received no such answer (its resolver sits behind a local forwarder we did not capture)
an answer delivered to any host is used. Answers carry their CNAME chain: the queried name and
every alias are candidate names; the queried name is the hostname.

Added columns: ``hostname`` (text or missing) and ``name_source`` (sni | http_host | connect |
websocket | dns_answer | none), Categoricals of the texts used (ascending); ``names`` (tuple of
every candidate name; a Categorical of the distinct tuples); ``proxied`` (bool); ``target_port``
(the CONNECT / absolute-URI port for proxied flows, else ``resp_p``: the column itself when no
flow has a proxy target).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from .model import HttpConnect, HttpRequest, Observation, TlsClientHello, WebSocketUpgrade
from .policy.flowcodes import code_type, dense_codes, factorized, store
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
    from .dnsanswers import dns_chains  # here: it cleans names with this module's ``clean_name``

    out = flows.copy(deep=False)  # copy-on-write: the new columns never reach ``flows``
    n = len(flows)
    direct, proxy = _direct_names(seen)
    kinds: dict[tuple[tuple[str, str], ...], int] = {(): 0}  # index 0: no direct name
    codes = [kinds.setdefault(found, len(kinds)) for found in direct.values()]
    chain_code, chains = dns_chains(flows, seen)  # int32; -1: no answer
    proxied = _proxy_mask(flows, site)
    at, ports = _proxy_rows(seen, proxy)
    proxied[at] = True
    # per flow, its combination as one small integer, built in place (4 B a flow where the sizes
    # allow: no row-sized int64 temporaries on a SYN scan's million flows)
    span = len(chains) + 1
    key = np.zeros(n, dtype=code_type(len(kinds) * span * 2 + 1))
    if direct:
        rows = seen.rows(list(direct))  # a scan's flows: no names, nothing to look up
        kept = rows >= 0
        key[rows[kept]] = np.asarray(codes, dtype=key.dtype)[kept]
        key *= span
    key += chain_code
    key += 1
    del chain_code
    key *= 2
    key += proxied
    inverse, uniq = _combinations(key)
    del key
    found_of = list(kinds)
    choices: list[tuple[str | None, str, tuple[str, ...]]] = []
    for k in uniq.tolist():
        combo, is_proxy = divmod(k, 2)
        f, c = divmod(combo, span)
        chain = chains[c - 1] if c else ()
        choices.append(_choose(dict(found_of[f]), bool(is_proxy), chain[0] if chain else None, chain))
    inverse = inverse.reshape(-1)
    # the name columns as Categoricals of the texts used (distinct, ascending: what
    # policy.flowcodes.few_texts and TextColumn.column give): their codes taken from the
    # combinations', a byte or two a flow where object columns were eight
    store(out, "hostname", _coded([c[0] for c in choices], inverse))
    store(out, "name_source", _coded([c[1] for c in choices], inverse))
    store(out, "names", _coded_tuples([c[2] for c in choices], inverse))
    del inverse
    store(out, "proxied", proxied)
    out["target_port"] = _target_port(flows["resp_p"], at, ports)
    return out


def _proxy_rows(seen: Observed, proxy: _Proxy) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the flows with a proxy target, and each one's target port (> 0)."""
    if not proxy.ports:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64)
    at = seen.rows(list(proxy.ports))
    return at[at >= 0], np.asarray(list(proxy.ports.values()), dtype=np.int64)[at >= 0]


def _target_port(resp_p: pd.Series, at: np.ndarray, ports: np.ndarray) -> pd.Series:
    """``resp_p`` with the proxy targets' ports at ``at``: the column itself (shared, copy-on-write)
    when there are none (a SYN scan), else a copy in its own integer type where the ports fit
    (int64 for any other column, as before)."""
    dtype = resp_p.dtype
    if at.shape[0] == 0 and isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return resp_p
    if not (isinstance(dtype, np.dtype) and dtype.kind in "iu") or (
        ports.shape[0] and not np.iinfo(dtype).min <= ports.min() <= ports.max() <= np.iinfo(dtype).max
    ):
        dtype = np.dtype(np.int64)
    values = resp_p.to_numpy(dtype=dtype, copy=True)
    values[at] = ports
    return pd.Series(values, index=resp_p.index, copy=False)


def _coded_tuples(tuples: list[tuple[str, ...]], inverse: np.ndarray) -> pd.Categorical:
    """``tuples[inverse]`` as a Categorical of the distinct tuples (in order of first entry): read
    by classification a few rows or one per distinct value at a time, it holds a code a flow
    where the object column held a pointer (8 B a flow for the whole classification)."""
    index: dict[tuple[str, ...], int] = {}
    lut = np.array([index.setdefault(t, len(index)) for t in tuples], dtype=code_type(len(tuples)))
    cats = np.empty(len(index), dtype=object)  # tuples: set one by one, not read as a 2-d list
    for t, i in index.items():
        cats[i] = t
    categories = pd.Index(cats, dtype=object, tupleize_cols=False)
    return pd.Categorical.from_codes(lut[inverse], categories, validate=False)


def _coded(texts: list[str | None], inverse: np.ndarray) -> pd.Categorical:
    """``texts[inverse]`` as a Categorical of the texts used (every entry of ``texts`` is, by one
    flow at least), distinct and ascending; ``None``: missing."""
    cats = sorted({t for t in texts if t is not None})
    rank = {t: i for i, t in enumerate(cats)}
    kind = code_type(len(cats))
    lut = np.array([rank[t] if t is not None else -1 for t in texts], dtype=kind)
    return pd.Categorical.from_codes(lut[inverse], pd.Index(cats, dtype=object), validate=False)


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
    sni, websocket = _Pairs("sni"), _Pairs("websocket")
    ids: list[int | None] = []  # the flow ids, read in this pass (kept for the readers after)
    get = found.get
    for obs in seen.of(*wanted):
        fid = obs.flow_id
        if fid is None:
            fid = seen.flow_of(obs)
        ids.append(fid)
        if fid is None:
            continue
        kind = type(obs)
        # the common cases inline (what :func:`_add` does): one name, one source, its pair tuple
        # made once per distinct text
        if kind is TlsClientHello:
            one = sni[obs.sni]
        elif kind is WebSocketUpgrade and obs.path[:1] == "/":  # origin-form: not via a proxy
            one = websocket[obs.host]
        else:
            _note(found, proxy, fid, obs)
            continue
        if one is None:
            continue
        have = get(fid)
        if have is None:
            found[fid] = one
        elif all(s != one[0][0] for s, _ in have):
            found[fid] = (*have, one[0])
    seen.remember(wanted, ids)
    return found, proxy


class _Pairs(dict[str | None, tuple[tuple[str, str]] | None]):
    """text -> ``((source, clean_name(text)),)``, None when the name is empty: the found tuple of
    a flow with one name, made once per distinct text."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def __missing__(self, text: str | None) -> tuple[tuple[str, str]] | None:
        name = clean_name(text)
        one = self[text] = ((self.source, name),) if name else None
        return one


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
