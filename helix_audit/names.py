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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from .model import DnsResponse, HttpConnect, HttpRequest, Observation, TlsClientHello, WebSocketUpgrade

if TYPE_CHECKING:
    from .policy.site import SiteProfile

NAME_SOURCES = ("sni", "http_host", "connect", "websocket", "dns_answer", "none")


@dataclass
class _FlowNames:
    found: dict[str, str] = field(default_factory=dict)  # source -> name (first seen wins)
    target_port: int | None = None
    proxied: bool = False

    def add(self, source: str, name: str | None) -> None:
        if name:
            self.found.setdefault(source, name)


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


def split_target(target: str) -> tuple[str | None, int | None]:
    """``host:port`` (CONNECT target) -> (host, port)."""
    parts = urlsplit("//" + target.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return clean_name(parts.hostname), port


def flow_index(flows: pd.DataFrame) -> dict[tuple[str, str, int, str, int], int]:
    """(transport, a, a_port, b, b_port) -> flow_id, both directions; for observations without one."""
    index: dict[tuple[str, str, int, str, int], int] = {}
    cols = zip(
        flows["flow_id"],
        flows["transport"],
        flows["orig_h"],
        flows["orig_p"],
        flows["resp_h"],
        flows["resp_p"],
        strict=True,
    )
    for fid, tr, oh, op, rh, rp in cols:
        index[(tr, oh, int(op), rh, int(rp))] = int(fid)
        index[(tr, rh, int(rp), oh, int(op))] = int(fid)
    return index


def observation_flows(flows: pd.DataFrame, observations: Sequence[Observation]) -> list[int | None]:
    """The flow id of every observation (its own ``flow_id``, else found by its 5-tuple)."""
    index: dict[tuple[str, str, int, str, int], int] | None = None
    out: list[int | None] = []
    for obs in observations:
        if obs.flow_id is not None:
            out.append(obs.flow_id)
            continue
        if index is None:
            index = flow_index(flows)
        out.append(index.get((obs.transport, obs.src, obs.sport, obs.dst, obs.dport)))
    return out


def attribute(
    flows: pd.DataFrame, observations: Sequence[Observation], site: SiteProfile | None = None
) -> pd.DataFrame:
    """A copy of ``flows`` with hostname, name_source, names, proxied and target_port added."""
    out = flows.copy()
    direct = _direct_names(flows, observations)
    dns_name, dns_names = _dns_names(flows, observations)
    proxy_dst = _proxy_mask(flows, site)
    n = len(flows)
    hostnames = np.full(n, None, dtype=object)
    sources = np.full(n, "none", dtype=object)
    names = np.empty(n, dtype=object)
    names[:] = [()] * n
    ports = flows["resp_p"].to_numpy(dtype=np.int64).copy()
    proxied = proxy_dst.copy()
    fids = flows["flow_id"].to_numpy()
    has_dns = np.fromiter((d is not None for d in dns_name), dtype=bool, count=n)
    has_direct = np.isin(fids, np.fromiter(direct, dtype=np.int64, count=len(direct)))
    chosen: dict[tuple[object, ...], tuple[str | None, str, tuple[str, ...]]] = {}  # evidence repeats
    for i in np.flatnonzero(has_dns | has_direct):  # only flows with any evidence
        info = direct.get(int(fids[i]))
        is_proxy = bool(proxy_dst[i] or (info is not None and info.proxied))
        key = (tuple(info.found.items()) if info is not None else None, is_proxy, dns_name[i], dns_names[i])
        choice = chosen.get(key)
        if choice is None:
            choice = chosen[key] = _choose(info, is_proxy, dns_name[i], dns_names[i])
        hostnames[i], sources[i], names[i] = choice
        proxied[i] = is_proxy
        if is_proxy and info is not None and info.target_port:
            ports[i] = info.target_port
    out["hostname"] = pd.Series(hostnames, index=out.index, dtype=object)
    out["name_source"] = sources
    out["names"] = pd.Series(names, index=out.index, dtype=object)
    out["proxied"] = proxied
    out["target_port"] = ports
    return out


_DIRECT_ORDER = ("sni", "websocket", "http_host")
_PROXY_ORDER = ("connect", "http_host", "sni", "websocket")


def _choose(
    info: _FlowNames | None, proxied: bool, dns_name: str | None, dns_names: tuple[str, ...]
) -> tuple[str | None, str, tuple[str, ...]]:
    found = info.found if info is not None else {}
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


def _direct_names(flows: pd.DataFrame, observations: Sequence[Observation]) -> dict[int, _FlowNames]:
    wanted = [o for o in observations if isinstance(o, TlsClientHello | HttpRequest)]
    out: dict[int, _FlowNames] = {}
    for obs, fid in zip(wanted, observation_flows(flows, wanted), strict=True):
        if fid is not None:
            _note(out.setdefault(fid, _FlowNames()), obs)
    return out


def _note(info: _FlowNames, obs: Observation) -> None:
    if isinstance(obs, TlsClientHello):
        info.add("sni", clean_name(obs.sni))
    elif isinstance(obs, HttpConnect):
        host, port = split_target(obs.target or obs.path)
        info.add("connect", host)
        info.proxied = True
        info.target_port = info.target_port or port or 443
    elif isinstance(obs, HttpRequest):
        if obs.path.lower().startswith(("http://", "https://", "ws://", "wss://")):
            parts = urlsplit(obs.path)
            info.add("absolute", clean_name(parts.hostname))
            info.proxied = True
            info.target_port = info.target_port or _url_port(parts)
        source = "websocket" if isinstance(obs, WebSocketUpgrade) else "http_host"
        info.add(source, clean_name(obs.host))


def _url_port(parts: object) -> int:
    try:
        port = parts.port  # type: ignore[attr-defined]
    except ValueError:
        port = None
    return port or (443 if parts.scheme in ("https", "wss") else 80)  # type: ignore[attr-defined]


def _proxy_mask(flows: pd.DataFrame, site: SiteProfile | None) -> np.ndarray:
    if site is None or not site.proxies:
        return np.zeros(len(flows), dtype=bool)
    pairs = flows[["resp_h", "resp_p"]].drop_duplicates()
    hits = {
        (h, int(p)) for h, p in zip(pairs["resp_h"], pairs["resp_p"], strict=True) if site.is_proxy(h, int(p))
    }
    keys = zip(flows["resp_h"].to_numpy(dtype=object), flows["resp_p"].to_numpy(), strict=True)
    return np.fromiter(((h, int(p)) in hits for h, p in keys), dtype=bool, count=len(flows))


# --- DNS answers ------------------------------------------------------------------------------


def answer_rows(observations: Iterable[Observation]) -> pd.DataFrame:
    """One row per (address, response): ts, client, resolver, addr, hostname, names (CNAME chain)."""
    rows = []
    known: dict[tuple[object, ...], list[tuple[str, tuple[str, ...]]]] = {}  # answers repeat: walk once
    for obs in observations:
        if not isinstance(obs, DnsResponse) or obs.rcode != "NOERROR" or obs.protocol != "dns":
            continue
        key = (obs.qname, obs.answers)
        chains = known.get(key)
        if chains is None:
            chains = known[key] = _chains(obs)
        for addr, chain in chains:
            rows.append((obs.ts, obs.dst, obs.src, addr, chain[0], chain))
    cols = ["ts", "client", "resolver", "addr", "dns_hostname", "dns_names"]
    return pd.DataFrame(rows, columns=cols).sort_values("ts", kind="stable", ignore_index=True)


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


def _dns_names(
    flows: pd.DataFrame, observations: Sequence[Observation]
) -> tuple[list[str | None], list[tuple[str, ...]]]:
    n = len(flows)
    answers = answer_rows(observations)
    if answers.empty or n == 0:
        return [None] * n, [()] * n
    left = pd.DataFrame(
        {
            "pos": np.arange(n),
            "ts": flows["first_ts"].to_numpy(dtype=float),
            "addr": flows["resp_h"].astype(str).to_numpy(),
            "client": flows["orig_h"].astype(str).to_numpy(),
        }
    ).sort_values("ts", kind="stable")
    own = pd.merge_asof(left, answers, on="ts", by=["addr", "client"], direction="backward")
    anyone = pd.merge_asof(left, answers.drop(columns="client"), on="ts", by="addr", direction="backward")
    host = own["dns_hostname"].where(own["dns_hostname"].notna(), anyone["dns_hostname"].to_numpy())
    chain = own["dns_names"].where(own["dns_names"].notna(), anyone["dns_names"].to_numpy())
    hosts: list[str | None] = [None] * n
    chains: list[tuple[str, ...]] = [()] * n
    for pos, h, c in zip(own["pos"].to_numpy(), host.to_numpy(), chain.to_numpy(), strict=True):
        if isinstance(h, str):
            hosts[pos], chains[pos] = h, c
    return hosts, chains
