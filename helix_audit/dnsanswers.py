"""Names from DNS answers: per flow, the CNAME chain of the latest A/AAAA answer naming its responder
that was delivered to its originator before the flow began, else to anyone (``names.attribute``'s
last evidence, ``merge_asof(by=...)`` done as integer arithmetic on codes and ranks)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from .model import DnsResponse
from .names import clean_name
from .policy.observed import Observed


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
    (and the codes :func:`dns_chains` gives addresses and clients, once per distinct one)."""
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


def dns_chains(flows: pd.DataFrame, seen: Observed) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per flow, the CNAME chain (int32 index into the returned list; -1: none) of the latest answer
    naming its responder delivered to its originator at or before the flow began, else to anyone.

    ``merge_asof(by=...)`` as integer arithmetic: addresses and clients become codes, times
    become ranks, and one ``searchsorted`` finds the latest answer per flow.
    """
    n = len(flows)
    found = _answers(seen.of(DnsResponse))
    chains = found.chains
    if found.ts.shape[0] == 0 or n == 0:
        return np.full(n, -1, dtype=np.int32), chains
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
    a_chain = found.chain[found.pair].astype(np.int32)
    return np.where(best >= 0, a_chain[np.maximum(best, 0)], np.int32(-1)), chains


def _latest(a_group: np.ndarray, a_rank: np.ndarray, f_group: np.ndarray, f_rank: np.ndarray) -> np.ndarray:
    """Per flow, the answer row with the flow's group and the greatest rank <= the flow's (the
    last in row order among equals), or -1.

    One stable sort of the answers by (group, rank) as one integer and one search per flow. Groups
    too large to share an int64 with the ranks are coded densely first (``_dense_groups``: a sort
    and a search more, ~3 ms per call on the benchmark)."""
    span = int(max(a_rank.max(), f_rank.max())) + 2  # ranks from -1 (a flow before every answer)
    top = int(max(a_group.max(), f_group.max())) + 1
    if min(int(a_group.min()), int(f_group.min())) < 0 or top >= (1 << 62) // span:
        a_group, f_group = _dense_groups(a_group, f_group)  # now <= answers: the key fits
    a_key = a_group.astype(np.int64) * span + (a_rank + 1)
    order = np.argsort(a_key, kind="stable")
    pos = np.searchsorted(a_key[order], f_group.astype(np.int64) * span + (f_rank + 1), side="right") - 1
    at = order[np.maximum(pos, 0)]
    return np.where((pos >= 0) & (a_group[at] == f_group), at, -1)


def _dense_groups(a_group: np.ndarray, f_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The answers' groups as 0..G-1 (in sorted order) and the flows' in the same codes, G for a
    group no answer has."""
    groups, a_g = np.unique(a_group, return_inverse=True)
    f_g = np.searchsorted(groups, f_group)
    f_g[f_g == groups.shape[0]] = 0
    return a_g.reshape(-1), np.where(groups[f_g] == f_group, f_g, groups.shape[0])
