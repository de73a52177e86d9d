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
    """Flows grouped by hostname (address when unnamed), biggest by bytes first."""
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
    comps = flows["orig_component"].fillna("other").astype(str) if not flows.empty else pd.Series([])
    lanes_order = [c for c in ("control_plane", "sandbox", "other") if (comps == c).any()]
    lanes_order += sorted(set(comps) - set(lanes_order))
    height = LANE_HEIGHT * max(len(lanes_order), 1) + 20
    if flows.empty:
        return Timeline(TIMELINE_WIDTH, height, (), "", "", 0.0)
    ts = flows["first_ts"].to_numpy(dtype=float)
    start, end = float(np.nanmin(ts)), float(np.nanmax(ts))
    span = max(end - start, 1e-6)
    edges = np.linspace(start, start + span, BUCKETS + 1)
    lanes = tuple(_lane(c, i, ts[(comps == c).to_numpy()], edges) for i, c in enumerate(lanes_order))
    return Timeline(TIMELINE_WIDTH, height, lanes, iso_time(start), iso_time(end), span / BUCKETS)


def _lane(component: str, index: int, ts: np.ndarray, edges: np.ndarray) -> Lane:
    counts, _ = np.histogram(ts, bins=edges)
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
