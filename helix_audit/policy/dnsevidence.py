"""The DNS lookups behind a finding's name, added to its evidence.

A finding about ``example-exfil.net`` is proven by its flows *and* by the lookup that named the
address: the query and the answer, from the finding's own sources. They go into the finding's
evidence (and so into its evidence capture), with a ``dns.qry.name`` display filter.

Thousands of findings share a few names and most have one source, so the lookups are indexed
once as arrays (every name a lookup carries, normalised once per distinct text; one sort by name,
client, frame and capture order) and each finding reads a slice of that order; the evidence of a
(name, sources) pair is built once and shared by the findings whose own evidence it does not
overlap.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import islice
from operator import attrgetter

import numpy as np
import pandas as pd

from ..arrays import sorted_unique
from ..model import DnsQuery, DnsResponse, Evidence, Finding, Observation
from .evidence import new_evidence
from .findings import stored_finding

#: At most this many DNS frames per finding and file (retries of one name add little).
MAX_DNS_FRAMES = 16
#: :meth:`_Index.positions` merges the lookups of up to this many hosts lazily; of more, it sorts
#: them at once when they are at most :data:`_SORTED_AT_ONCE`.
_MERGED_HOSTS = 8
_SORTED_AT_ONCE = 1 << 18


@lru_cache(maxsize=1 << 12)  # names repeat: each finding or lookup of a name wants its filter
def filter_string(text: str) -> str:
    """A Wireshark display-filter string literal: quotes and backslashes escaped, control
    characters as \\xNN, so a hostile name cannot break out of the filter."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Index:
    """The DNS lookups (queries and responses) of the wanted names, by (name, client).

    ``lookups`` holds them in capture order; a (name, client) pair maps to positions into it,
    sorted by frame then capture order (the order evidence takes them in)."""

    def __init__(self, observations: Iterable[Observation], wanted: set[str]) -> None:
        self.slices: dict[tuple[str, str], tuple[int, int]] = {}  # -> bounds in ``order``
        self.order: list[int] = []
        self._order = np.zeros(0, dtype=np.int64)  # ``order`` as an array, and each lookup's frame
        self._frames = np.zeros(0, dtype=np.int64)
        self.names: set[str] = set()
        want = sorted(wanted)
        code_of = {name: i for i, name in enumerate(want)}
        lookups, name_c, owner, clients, frames, files = _walk(observations, code_of)
        self.lookups, self.frames, self.files = lookups, frames, files
        self.file_count = len(set(files))
        if name_c:
            self._build(want, np.asarray(name_c, dtype=np.int64), np.asarray(owner, dtype=np.int64), clients)

    def _build(self, want: list[str], name_c: np.ndarray, owner: np.ndarray, clients: list[str]) -> None:
        n = len(self.lookups)
        pair = sorted_unique(name_c * n + owner, in_place=True)  # once per lookup, however many names match
        name_c, pos = pair // n, pair % n
        client_c, client_u = pd.factorize(np.asarray(clients, dtype=object)[pos])
        client_of = [*client_u.tolist(), None]  # code -1 (a missing client): None
        self._frames = np.asarray(self.frames, dtype=np.int64)
        order = _by_name_client_frame(name_c, client_c, len(client_u), self._frames[pos], pos)
        name_c, pos, cl = name_c[order], pos[order], client_c[order]
        starts = np.flatnonzero(np.r_[True, (name_c[1:] != name_c[:-1]) | (cl[1:] != cl[:-1])])
        self.order, self._order = pos.tolist(), pos
        bounds = [*starts.tolist(), len(pos)]
        names = [want[c] for c in name_c[starts].tolist()]
        clients_at = [client_of[c] for c in cl[starts].tolist()]
        for i, (name, client) in enumerate(zip(names, clients_at, strict=True)):
            self.slices[(name, client)] = (bounds[i], bounds[i + 1])
        self.names.update(names)

    def positions(self, name: str, hosts: Sequence[str]) -> Iterable[int]:
        """The lookups of ``name`` by any of ``hosts``, by frame then capture order (lazily
        merged: evidence wants the first few; the lookups of many hosts, if not too many, sorted
        at once with numpy instead: a thousand-host finding's merge cost ~3 ms)."""
        at = self.order.__getitem__  # read lazily: a busy (name, client) has thousands of lookups
        found = [s for h in hosts if (s := self.slices.get((name, h))) is not None]
        if len(found) <= 1:
            return map(at, range(*found[0])) if found else ()
        if len(found) > _MERGED_HOSTS:
            bounds = np.asarray(found, dtype=np.int64)
            sizes = bounds[:, 1] - bounds[:, 0]
            total = int(sizes.sum())
            if total <= _SORTED_AT_ONCE:
                shift = np.repeat(bounds[:, 0] - np.cumsum(sizes) + sizes, sizes)  # slices spelled out
                pos = self._order[shift + np.arange(total)]
                return pos[np.lexsort((pos, self._frames[pos]))].tolist()
        frames = self.frames
        return heapq.merge(*(map(at, range(*s)) for s in found), key=lambda p: (frames[p], p))

    def evidence(self, pos: Iterable[int], filt: str, have: set[tuple[str, int]]) -> list[Evidence]:
        """Per file (by name), the first :data:`MAX_DNS_FRAMES` lookups of ``pos`` whose (file,
        frame) is not in ``have``."""
        files, frames = self.files, self.frames
        by_file: dict[str, list[int]] = {}
        if not have and self.file_count == 1:  # one capture (the usual): the loop's first ones
            first = list(islice(pos, MAX_DNS_FRAMES))
            if first:
                by_file[files[first[0]]] = first
        else:
            full = 0
            for p in pos:
                if have and (files[p], frames[p]) in have:
                    continue
                group = by_file.setdefault(files[p], [])
                if len(group) < MAX_DNS_FRAMES:
                    group.append(p)
                    full += len(group) == MAX_DNS_FRAMES
                    if full == self.file_count:
                        break
        out = []
        for file, group in sorted(by_file.items()):
            lookups = list(map(self.lookups.__getitem__, group))
            flows = set(map(_FLOW_ID, lookups))
            flows.discard(None)
            out.append(
                new_evidence(
                    file,
                    tuple(map(frames.__getitem__, group)),
                    lookups[0].ts,
                    lookups[-1].ts,
                    tuple(sorted(flows)),
                    filt,
                )
            )
        return out


def _by_name_client_frame(
    name_c: np.ndarray, client_c: np.ndarray, clients: int, frame: np.ndarray, pos: np.ndarray
) -> np.ndarray:
    """The order of the (name, lookup) pairs by name, client code, frame, then lookup position
    (``np.lexsort`` of the four). The pairs come sorted by name then position, so one stable sort
    of a combined integer key gives the same order when the key fits in 63 bits."""
    if frame.shape[0] and int(frame.min()) >= 0:
        frames = int(frame.max()) + 1
        if (int(name_c.max()) + 1) * (clients + 1) * frames < 1 << 62:
            key = name_c * (clients + 1) + (client_c + 1)  # a missing client (-1) first, as lexsort
            key *= frames
            key += frame
            return np.argsort(key, kind="stable")
    return np.lexsort((pos, frame, client_c, name_c))


def _walk(
    observations: Iterable[Observation], code_of: dict[str, int]
) -> tuple[list[DnsQuery | DnsResponse], list[int], list[int], list[str], list[int], list[str]]:
    """One pass over the observations (touching each object once is most of the cost): the
    lookups in capture order, each (wanted-name index, lookup position) pair of the names a lookup
    carries (the question; for a response each record's owner and each CNAME target too; each
    distinct text normalised once), each lookup's client (a query's source, a response's
    destination), frame and file."""
    kinds: dict[type, int] = {}  # 1: query, 2: response, 0: neither (isinstance, asked per type)
    hits: dict[object, int] = {}  # text -> its wanted-name index, or -1
    lookups: list[DnsQuery | DnsResponse] = []
    name_c: list[int] = []
    owner: list[int] = []
    clients: list[str] = []
    frames: list[int] = []
    files: list[str] = []
    for obs in observations:
        kind = kinds.get(type(obs))
        if kind is None:
            kind = kinds[type(obs)] = (
                1 if isinstance(obs, DnsQuery) else 2 if isinstance(obs, DnsResponse) else 0
            )
        if not kind:
            continue
        p = len(lookups)
        lookups.append(obs)  # type: ignore[arg-type]
        frames.append(obs.frame)
        files.append(obs.file)
        texts: list[object] = [obs.qname]  # type: ignore[attr-defined]
        if kind == 1:
            clients.append(obs.src)
        else:
            clients.append(obs.dst)
            for ans in obs.answers:  # type: ignore[attr-defined]
                texts.extend((ans.name, ans.data) if ans.rtype == "CNAME" else (ans.name,))
        for text in texts:
            h = hits.get(text)
            if h is None:
                h = hits[text] = _hit(text, code_of)
            if h >= 0:
                name_c.append(h)
                owner.append(p)
    return lookups, name_c, owner, clients, frames, files


def _hit(text: object, code_of: dict[str, int]) -> int:
    return code_of.get(text.lower().rstrip("."), -1) if isinstance(text, str) else -1


_FLOW_ID = attrgetter("flow_id")

#: (name, sources, filter) -> the evidence, with each item's (file, frames) to test overlaps
_Shared = dict[tuple[object, ...], list[tuple[Evidence, str, frozenset[int]]]]


def _lookup_evidence(
    finding: Finding, index: _Index, name: str, filt: str, shared: _Shared
) -> list[Evidence]:
    """Per file, the first :data:`MAX_DNS_FRAMES` lookups (by frame, then capture order) of the
    finding's sources that its evidence does not list yet."""
    sources = finding.sources
    hosts: tuple[str, ...] = sources if len(sources) == 1 else tuple(sorted(set(sources) or {finding.src}))
    key = (name, hosts, filt)
    found = shared.get(key)
    if found is None:
        built = index.evidence(index.positions(name, hosts), filt, set())
        found = shared[key] = [(e, e.file, frozenset(e.frames)) for e in built]
    # the lookups kept are the first ones of each file: if the finding lists none of them, the
    # ones it does list (if any) come later and change nothing
    if not any(
        ev.file == file and not kept.isdisjoint(ev.frames)
        for _, file, kept in found
        for ev in finding.evidence
    ):
        return [e for e, _, _ in found]
    have = {(e.file, f) for e in finding.evidence for f in e.frames}
    return index.evidence(index.positions(name, hosts), filt, have)


def with_dns_evidence(findings: list[Finding], observations: Iterable[Observation]) -> list[Finding]:
    """Each finding with a hostname gets the DNS lookups of that name by its sources appended."""
    names = [(finding.hostname or "").lower().rstrip(".") for finding in findings]
    index = _Index(observations, set(names))
    filters: dict[str, str] = {}  # one display filter per distinct hostname
    shared: _Shared = {}
    out = []
    for finding, name in zip(findings, names, strict=True):
        if name not in index.names:
            out.append(finding)
            continue
        host = finding.hostname or ""
        filt = filters.get(host)
        if filt is None:
            filt = filters[host] = f"dns.qry.name == {filter_string(host)}"
        extra = _lookup_evidence(finding, index, name, filt, shared)
        out.append(_with_evidence(finding, finding.evidence + tuple(extra)) if extra else finding)
    return out


def _with_evidence(finding: Finding, evidence: tuple[Evidence, ...]) -> Finding:
    """``dataclasses.replace(finding, evidence=evidence)``, its fields copied as one dict (no
    keyword call and key check per finding, ~1.5 us each of ~4,000)."""
    return stored_finding({**vars(finding), "evidence": evidence})
