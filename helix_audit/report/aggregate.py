"""Aggregated HTML sections: destinations by hostname and registrable domain, DNS lookups, timeline.

Vectorised over the flow table (pandas group-by, numpy histogram), so 100k flows become a few
hundred rows and a fixed number of SVG bars. Registrable domains come from the Public Suffix List
(ICANN section) via ``publicsuffixlist``, which ships the list: no network at run time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from helix_audit.model import DnsQuery, DnsResponse, Observation
from helix_audit.policy.flowcodes import factorized
from helix_audit.report.common import clip, display_text, iso_time
from helix_audit.report.model import Bar, DestRow, DnsRow, Lane, Table, Timeline

TIMELINE_WIDTH, LANE_HEIGHT, LABEL_WIDTH, BUCKETS = 960, 44, 120, 120
ANSWERS_SHOWN = 10


@lru_cache(maxsize=1)
def _psl() -> object | None:
    try:
        from publicsuffixlist import PublicSuffixList
    except ImportError:  # pragma: no cover - dependency declared; fall back to the last two labels
        return None
    return PublicSuffixList(only_icann=True)


@lru_cache(maxsize=65536)
def registrable_domain(host: str) -> str:
    """example.co.uk for a.b.example.co.uk; the address itself for an IP literal."""
    name = host.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    psl = _psl()
    found = psl.privatesuffix(name) if psl is not None else None  # type: ignore[attr-defined]
    if found:
        return str(found)
    return ".".join(name.split(".")[-2:])


def _joined(frame: pd.DataFrame, key: str, column: str) -> pd.Series:
    pairs = frame[[key, column]].dropna().drop_duplicates()
    return pairs.groupby(key)[column].agg(lambda s: ", ".join(sorted(str(v) for v in s)))


def destinations(flows: pd.DataFrame, cap: int) -> Table[DestRow]:
    """Flows grouped by hostname (address when unnamed), biggest by bytes first.

    On integer codes, a chunk of rows at a time (:func:`_dest_codes`, :func:`_sums`,
    :func:`_values_of`): the frame of every flow's destination, counters and texts that a pandas
    group-by needs (and the copy of its rows in the top destinations) was ~110 B a flow, the
    bundle's peak on a SYN scan. :func:`_destinations_frame` (the reference) for anything else."""
    if flows.empty:
        return Table((), 0)
    coded = _dest_codes(flows)
    counters = [flows[c].to_numpy() for c in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes")]
    if coded is None or any(a.dtype.kind not in "iu" for a in counters):
        return _destinations_frame(flows, cap)
    dest, names = coded
    counts, packets, volume = _sums(dest, len(names), counters)
    used = np.flatnonzero(counts)
    sums = pd.DataFrame(
        {"flows": counts[used], "packets": packets[used], "bytes": volume[used]},
        index=pd.Index([names[i] for i in used.tolist()], dtype=object, name="dest"),
    )
    top = sums.sort_values(["bytes", "flows"], ascending=False).head(cap)
    rank = np.full(len(names) + 1, -1, dtype=np.int64)  # per destination code (-1: missing): its row
    rank[used[sums.index.get_indexer(top.index)]] = np.arange(len(top))
    joined = {
        key: _values_of(flows[column], rank, dest, len(top))
        for key, column in (
            ("component", "orig_component"),
            ("port", "resp_p"),
            ("verdict", "verdict"),
            ("rule", "rule"),
        )
    }
    rows = tuple(
        DestRow(
            clip(display_text(registrable_domain(str(dest_name)))),
            clip(display_text(dest_name)),
            joined["component"][k],
            joined["port"][k],
            joined["verdict"][k],
            clip(display_text(joined["rule"][k])),
            int(r.flows),
            int(r.packets),
            int(r.bytes),
        )
        for k, (dest_name, r) in enumerate(top.iterrows())
    )
    return Table(rows, len(sums))


_CHUNK = 1 << 16


def _dest_codes(flows: pd.DataFrame) -> tuple[np.ndarray, list[str]] | None:
    """Per flow, the code of its destination (the hostname, else the responder address; -1: both
    missing) into the destinations, distinct and ascending (a group-by's order); None unless every
    value is a text (the reference then groups them)."""
    h_codes, h_vals = factorized(flows["hostname"])
    r_codes, r_vals = factorized(flows["resp_h"])
    if not all(isinstance(v, str) for v in (*h_vals, *r_vals)):
        return None
    names = sorted({*h_vals, *r_vals})  # type: ignore[type-var]
    at = {v: i for i, v in enumerate(names)}
    kind = np.int32 if len(names) < 1 << 31 else np.int64
    h_lut = np.array([at[v] for v in h_vals] + [-1], dtype=kind)  # code -1 reads the last entry
    r_lut = np.array([at[v] for v in r_vals] + [-1], dtype=kind)
    dest = h_lut[h_codes]
    for lo in range(0, dest.shape[0], _CHUNK):  # the unnamed rows' addresses (a SYN scan: every row)
        unnamed = h_codes[lo : lo + _CHUNK] < 0
        dest[lo : lo + _CHUNK][unnamed] = r_lut[r_codes[lo : lo + _CHUNK][unnamed]]
    return dest, names  # type: ignore[return-value]


def _sums(dest: np.ndarray, n: int, counters: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per destination code: flows, packets (orig + resp), bytes (orig + resp IP bytes); each
    flow's sums in its columns' type, as the frame's ``a + b`` is, then added up in int64."""
    counts, packets, volume = (np.zeros(n, dtype=np.int64) for _ in range(3))
    o_pkts, r_pkts, o_bytes, r_bytes = counters
    for lo in range(0, dest.shape[0], _CHUNK):
        at = slice(lo, lo + _CHUNK)
        d = dest[at]
        keep = d >= 0
        d = d[keep]
        np.add.at(counts, d, 1)
        np.add.at(packets, d, (o_pkts[at] + r_pkts[at])[keep].astype(np.int64))
        np.add.at(volume, d, (o_bytes[at] + r_bytes[at])[keep].astype(np.int64))
    return counts, packets, volume


def _values_of(column: pd.Series, rank: np.ndarray, dest: np.ndarray, k: int) -> list[str]:
    """Per top destination (``rank`` of a destination code: its row, -1 for the others), its
    distinct values of the column (missing ones left out) as sorted texts joined by ``, ``.

    The distinct (row, value) pairs are bits of one bitmap, a row's span of values at a time (a
    Categorical's codes, an integer column's values from its least): a scan's top destinations
    hold a pair a probed port, up to a pair a flow, as Python objects (or keys) a size that grows
    with the scan; 500 rows of ports are 4 MiB of bits. Only one destination's texts exist at a
    time. Other columns (or a span too wide): :func:`_values_by_set`."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        values, lut = factorized(column)
        base, span = 0, max(len(lut), 1)
    elif isinstance(column.dtype, np.dtype) and column.dtype.kind == "i" and len(column):
        values = column.to_numpy()
        base, span, lut = int(values.min()), int(values.max()) - int(values.min()) + 1, None
    else:
        return _values_by_set(column, rank, dest, k)
    if k * span > _BITMAP_BITS:
        return _values_by_set(column, rank, dest, k)
    bits = np.zeros((k * span + 7) >> 3, dtype=np.uint8)
    for lo in range(0, dest.shape[0], _CHUNK):
        row = rank[dest[lo : lo + _CHUNK]]
        v = values[lo : lo + _CHUNK].astype(np.int64) - base
        keep = (row >= 0) & (v >= 0)  # a Categorical's missing values: code -1
        key = row[keep] * span + v[keep]
        np.bitwise_or.at(bits, key >> 3, np.left_shift(1, key & 7).astype(np.uint8))
    out = []
    for r in range(k):
        first = r * span
        part = np.unpackbits(bits[first >> 3 : ((first + span + 7) >> 3)], bitorder="little")
        got = np.flatnonzero(part[first & 7 : (first & 7) + span]).tolist()
        texts = [str(lut[c]) for c in got] if lut is not None else [str(c + base) for c in got]
        out.append(", ".join(sorted(texts)))
    return out


#: Largest bitmap of (row, value) pairs :func:`_values_of` makes (32 MiB).
_BITMAP_BITS = 1 << 28


def _values_by_set(column: pd.Series, rank: np.ndarray, dest: np.ndarray, k: int) -> list[str]:
    """:func:`_values_of` for any column: each chunk's values factorised, the pairs kept in sets."""
    found: list[set[object]] = [set() for _ in range(k)]
    values = column.to_numpy()
    for lo in range(0, dest.shape[0], _CHUNK):
        row = rank[dest[lo : lo + _CHUNK]]
        keep = row >= 0
        if not keep.any():
            continue
        codes, uniques = pd.factorize(values[lo : lo + _CHUNK][keep])
        lut = uniques.tolist() if hasattr(uniques, "tolist") else list(uniques)
        row, valid = row[keep], codes >= 0
        for pair in np.unique(row[valid] * (len(lut) + 1) + codes[valid]).tolist():
            r, c = divmod(pair, len(lut) + 1)
            found[r].add(lut[c])
    return [", ".join(sorted(str(v) for v in s)) for s in found]


def _destinations_frame(flows: pd.DataFrame, cap: int) -> Table[DestRow]:
    """:func:`destinations` by a pandas group-by of the whole table (for any column types)."""
    if flows.empty:
        return Table((), 0)
    frame = pd.DataFrame(
        {
            "dest": flows["hostname"].astype(object).where(flows["hostname"].notna(), flows["resp_h"]),
            "component": flows["orig_component"],
            "port": flows["resp_p"],
            "verdict": flows["verdict"],
            "rule": flows["rule"],
            "packets": flows["orig_pkts"] + flows["resp_pkts"],
            "bytes": flows["orig_ip_bytes"] + flows["resp_ip_bytes"],
        }
    )
    sums = frame.groupby("dest").agg(
        flows=("port", "size"), packets=("packets", "sum"), bytes=("bytes", "sum")
    )
    top = sums.sort_values(["bytes", "flows"], ascending=False).head(cap)
    sub = frame[frame["dest"].isin(top.index)]
    joined = {c: _joined(sub, "dest", c) for c in ("component", "port", "verdict", "rule")}
    rows = tuple(
        DestRow(
            clip(display_text(registrable_domain(str(dest)))),
            clip(display_text(dest)),
            joined["component"].get(dest, ""),
            joined["port"].get(dest, ""),
            joined["verdict"].get(dest, ""),
            clip(display_text(joined["rule"].get(dest, ""))),
            int(r.flows),
            int(r.packets),
            int(r.bytes),
        )
        for dest, r in top.iterrows()
    )
    return Table(rows, len(sums))


@dataclass
class _DnsGroup:
    queries: int = 0
    rcodes: set[str] = field(default_factory=set)
    answers: set[str] = field(default_factory=set)
    resolvers: set[str] = field(default_factory=set)


def dns_lookups(observations: list[Observation], cap: int) -> Table[DnsRow]:
    """DNS questions grouped by (name, type): how often asked, the rcodes and answers seen."""
    groups: dict[tuple[str, str], _DnsGroup] = {}
    for o in observations:
        if not isinstance(o, DnsQuery | DnsResponse):
            continue
        g = groups.setdefault((o.qname.lower(), o.qtype), _DnsGroup())
        if isinstance(o, DnsQuery):
            g.queries += 1
            g.resolvers.add(o.dst)
        else:
            g.rcodes.add(o.rcode)
            g.answers.update(f"{a.rtype} {a.data}" for a in o.answers)
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1].queries, kv[0]))
    rows = tuple(
        DnsRow(
            clip(display_text(name)),
            display_text(qtype),
            g.queries,
            display_text(", ".join(sorted(g.rcodes))),
            _answers(g.answers),
            display_text(", ".join(sorted(g.resolvers))),
        )
        for (name, qtype), g in ranked[:cap]
    )
    return Table(rows, len(groups))


def _answers(answers: set[str]) -> str:
    shown = sorted(answers)[:ANSWERS_SHOWN]
    more = f" (+{len(answers) - ANSWERS_SHOWN} more)" if len(answers) > ANSWERS_SHOWN else ""
    return clip(display_text(", ".join(shown) + more), 600)


def timeline(flows: pd.DataFrame) -> Timeline:
    """Connections started per time bucket, one lane per originating component."""
    lane_of, labels = _lanes(flows["orig_component"]) if not flows.empty else (np.zeros(0, np.int64), [])
    seen = np.zeros(len(labels), dtype=bool)
    seen[lane_of] = True
    present = {labels[i] for i in np.flatnonzero(seen).tolist()}
    lanes_order: list[str] = [c for c in ("control_plane", "sandbox", "other") if c in present]
    lanes_order += sorted(present - set(lanes_order))
    height = LANE_HEIGHT * max(len(lanes_order), 1) + 20
    if flows.empty:
        return Timeline(TIMELINE_WIDTH, height, (), "", "", 0.0)
    ts = flows["first_ts"].to_numpy(dtype=float)
    start, end = float(np.nanmin(ts)), float(np.nanmax(ts))
    span = max(end - start, 1e-6)
    edges = np.linspace(start, start + span, BUCKETS + 1)
    counts = np.zeros((len(labels), BUCKETS), dtype=np.int64)
    for lo in range(0, ts.shape[0], _CHUNK):  # no copy of the lane's times (a scan's: every flow's)
        part, lane = ts[lo : lo + _CHUNK], lane_of[lo : lo + _CHUNK]
        for i in range(len(labels)):
            counts[i] += np.histogram(part[lane == i], bins=edges)[0]
    lanes = tuple(_lane(c, i, counts[labels.index(c)], edges) for i, c in enumerate(lanes_order))
    return Timeline(TIMELINE_WIDTH, height, lanes, iso_time(start), iso_time(end), span / BUCKETS)


def _lanes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per flow, the index of its lane's label in the labels: ``str`` of its component, ``other``
    when missing (``fillna("other").astype(str)``, on codes: no text per flow, and a Categorical
    without an ``other`` category takes no fill)."""
    codes, values = factorized(column)
    texts = [str(v) for v in values] + ["other"]  # code -1 (missing) reads the last
    labels = list(dict.fromkeys(texts))
    lut = np.array([labels.index(t) for t in texts], dtype=np.int8 if len(labels) < 127 else np.int64)
    return lut[codes], labels


def _lane(component: str, index: int, counts: np.ndarray, edges: np.ndarray) -> Lane:
    """The lane's bars from its connections per bucket (``np.histogram`` of its times)."""
    y0 = index * LANE_HEIGHT + 4
    peak = max(int(counts.max()), 1)
    step = (TIMELINE_WIDTH - LABEL_WIDTH) / BUCKETS
    bars = tuple(
        Bar(
            round(LABEL_WIDTH + b * step, 2),
            round(y0 + (LANE_HEIGHT - 8) * (1 - n / peak), 2),
            round(max(step - 1, 1), 2),
            round((LANE_HEIGHT - 8) * n / peak, 2),
            f"{n} connection{'s' if n != 1 else ''} from {iso_time(float(edges[b]))}",
        )
        for b, n in enumerate(counts.tolist())
        if n
    )
    return Lane(display_text(component), y0, int(counts.sum()), bars)
