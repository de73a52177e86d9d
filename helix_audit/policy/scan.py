"""Inbound scans: one ``inbound_scan`` finding per scanner instead of one finding per probed port.

A SYN scan of a sandbox subnet is a million one-packet flows; reporting each (sandbox, port) as an
``inbound_to_sandbox`` finding buries the one fact that matters (who scanned) under a million
findings, and costs a Python step per flow. Security tools report a port scan as one event (Zeek's
``Scan::`` notices, IDS port-scan alerts); so do we: when one source made attempted-but-not-accepted
inbound TCP or UDP connections towards sandboxes on at least :data:`SCAN_MIN` distinct (sandbox,
port) pairs, those attempts become one finding for that source (per transport). Accepted
connections from the same source stay ``inbound_to_sandbox`` findings (a sandbox answered: worse),
as do low-confidence flows (direction guessed without a SYN) and ICMP.

Everything here is vectorised over the inbound rows; the Python work is per scanner, and what a
finding carries (frames, flow ids, listed sandboxes, port ranges) is capped, so a finding stays
small however large the scan (docs/findings.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import Evidence, Finding, Severity
from .evidence import _nan_min
from .findings import MAX_FRAMES, _addr_key, finding_id
from .flowrows import Columns

#: Distinct (sandbox, port) pairs one source must have probed, unanswered, to be a scanner.
SCAN_MIN = 16
#: Flows listed per finding (``flow_ids``, each evidence's frames): the earliest ones and the last.
SCAN_MAX_FLOWS = MAX_FRAMES
#: Sandboxes listed in ``extra.sandbox_addresses`` and in the display filter.
SCAN_MAX_LISTED = 32
#: Port ranges spelled out in ``extra.port_ranges`` (the message shows fewer).
SCAN_MAX_RANGES = 256
_MESSAGE_RANGES = 8
_PORT_SPAN = 1 << 16


def scan_findings(cols: Columns, inbound: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, list[Finding]]:
    """(mask of the flow rows that became scan findings, the findings). ``inbound``: rows with
    verdict ``inbound``; ``state``: ``accepted`` / ``attempted`` per row."""
    taken = np.zeros(len(cols), dtype=bool)
    transport = cols("transport")
    cand = (
        inbound & (state == "attempted") & np.isin(transport, ("tcp", "udp")) & (cols("confidence") != "low")
    )
    idx = np.flatnonzero(cand)
    if idx.shape[0] < SCAN_MIN:
        return taken, []
    src_code, _ = pd.factorize(cols("orig_h")[idx])
    tr_code, _ = pd.factorize(transport[idx])
    dst_code, dsts = pd.factorize(cols("resp_h")[idx])
    span = len(dsts) * _PORT_SPAN  # pair keys of one (source, transport) group: [g * span, (g + 1) * span)
    group = src_code.astype(np.int64) * 2 + tr_code
    pairs = np.sort(pd.unique(group * span + dst_code * _PORT_SPAN + cols("resp_p")[idx].astype(np.int64)))
    scanner = np.bincount(pairs // span, minlength=int(group.max()) + 1) >= SCAN_MIN
    hit = scanner[group]
    if not hit.any():
        return taken, []
    rows, groups = idx[hit], group[hit]
    taken[rows] = True
    order = np.argsort(groups, kind="stable")
    cuts = np.flatnonzero(np.diff(groups[order])) + 1
    found = np.flatnonzero(scanner)
    starts, ends = np.searchsorted(pairs, found * span), np.searchsorted(pairs, (found + 1) * span)
    answered = _accepted_counts(cols, inbound & (state == "accepted"))
    out = []
    for k, part in enumerate(np.split(rows[order], cuts)):
        probed = pairs[starts[k] : ends[k]] % span
        out.append(_finding(cols, part, probed, dsts, answered))
    return taken, out


def _accepted_counts(cols: Columns, accepted: np.ndarray) -> dict[tuple[str, str], int]:
    """(source, transport) -> accepted inbound connections (named in the scan's message)."""
    at = np.flatnonzero(accepted)
    if at.shape[0] == 0:
        return {}
    pairs = pd.DataFrame({"src": cols("orig_h")[at], "transport": cols("transport")[at]})
    counts = pairs.groupby(["src", "transport"], sort=False).size()
    return {(str(s), str(t)): int(n) for (s, t), n in counts.items()}


def _counts(values: np.ndarray) -> list[tuple[str, int]]:
    """(value, count), most frequent first, ties in sorted order; missing values count as ``-``."""
    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    n = np.bincount(codes, minlength=len(uniq)).tolist()
    named = ("-" if pd.isna(u) else str(u) for u in uniq.tolist())
    return sorted(zip(named, n, strict=True), key=lambda vc: (-vc[1], vc[0]))


def _finding(
    cols: Columns, rows: np.ndarray, probed: np.ndarray, dsts: pd.Index, accepted: dict[tuple[str, str], int]
) -> Finding:
    """The finding of one scanner's probes: ``rows`` (positions, frame order), ``probed`` (its
    distinct (sandbox code in ``dsts``, port) pairs as ``code * 65536 + port``)."""
    src, transport = str(cols("orig_h")[rows[0]]), str(cols("transport")[rows[0]])
    seen_port = np.zeros(_PORT_SPAN, dtype=bool)
    seen_port[probed % _PORT_SPAN] = True
    port_list = np.flatnonzero(seen_port)
    seen_dst = np.zeros(len(dsts), dtype=bool)
    seen_dst[probed // _PORT_SPAN] = True
    sandboxes = sorted((str(d) for d in dsts[seen_dst]), key=_addr_key)
    pairs = int(probed.shape[0])
    counts = _counts(cols("conn_state")[rows])
    state_text = ", ".join(f"{s} x{n:,}" for s, n in counts)
    answered = accepted.get((src, transport), 0)
    evidence = _evidence(cols, rows, _display_filter(src, transport, sandboxes))
    where = f"sandbox {sandboxes[0]}" if len(sandboxes) == 1 else f"{len(sandboxes):,} sandboxes"
    attempts = f" in {len(rows):,} attempts" if len(rows) != pairs else ""
    msg = (
        f"{src} probed {pairs:,} sandbox ports over {transport} ({where}, ports "
        f"{port_ranges(port_list, _MESSAGE_RANGES)}){attempts}: none accepted ({state_text}). Helix "
        "sandboxes never accept inbound connections (all channels are sandbox-initiated WebSockets)."
    )
    if answered:
        msg += f" {answered:,} accepted connection(s) from {src} are reported as inbound_to_sandbox."
    packets = cols("orig_pkts")[rows].sum() + cols("resp_pkts")[rows].sum()
    return Finding(
        id=finding_id("inbound_scan", "sandbox", src, transport),
        kind="inbound_scan",
        severity=Severity.HIGH,
        component="sandbox",
        src=src,
        src_port=None,
        dst=sandboxes[0] if len(sandboxes) == 1 else None,
        dst_port=None,
        transport=transport,
        hostname=None,
        message=msg,
        evidence=evidence,
        state="attempted",
        sources=(src,),
        flow_ids=tuple(sorted({f for e in evidence for f in e.flow_ids})),
        extra={
            "attempts": len(rows),
            "sandbox_ports": pairs,
            "sandboxes": len(sandboxes),
            "ports": int(port_list.shape[0]),
            "port_ranges": port_ranges(port_list, SCAN_MAX_RANGES),
            "sandbox_addresses": sandboxes[:SCAN_MAX_LISTED],
            "conn_states": dict(counts),
            "packets": int(packets),
            "accepted_elsewhere": answered,
        },
    )


def port_ranges(ports: np.ndarray, limit: int) -> str:
    """Sorted distinct ports as ``1-1024,8080``; past ``limit`` ranges, ``,... (+N more ranges)``."""
    if ports.shape[0] == 0:
        return ""
    breaks = np.flatnonzero(np.diff(ports) != 1) + 1
    starts, ends = ports[np.r_[0, breaks]], ports[np.r_[breaks - 1, ports.shape[0] - 1]]
    text = ",".join(
        str(a) if a == b else f"{a}-{b}"
        for a, b in zip(starts[:limit].tolist(), ends[:limit].tolist(), strict=True)
    )
    more = starts.shape[0] - limit
    return f"{text},... (+{more:,} more ranges)" if more > 0 else text


def _display_filter(src: str, transport: str, sandboxes: list[str]) -> str:
    """The scanner's probes: its SYNs without ACK (TCP) or its datagrams (UDP), to the sandboxes
    when few enough to list."""
    fam = "ipv6" if ":" in src else "ip"
    parts = [f"{fam}.src == {src}"]
    parts.append("tcp.flags.syn == 1 && tcp.flags.ack == 0" if transport == "tcp" else "udp")
    if len(sandboxes) == 1:
        parts.append(f"{fam}.dst == {sandboxes[0]}")
    elif len(sandboxes) <= SCAN_MAX_LISTED:  # not a set ({a b} in Wireshark 3, {a, b} in 4)
        parts.append("(" + " || ".join(f"{fam}.dst == {d}" for d in sandboxes) + ")")
    return " && ".join(parts)


def _evidence(cols: Columns, rows: np.ndarray, wireshark_filter: str) -> tuple[Evidence, ...]:
    """Per input file: the first frames of the earliest probes and of the last one (at most
    :data:`SCAN_MAX_FLOWS` flows), the time range of all, the listed flows and the filter."""
    files = cols("file")[rows]
    present = pd.notna(files)
    out = []
    for file in sorted(set(pd.unique(files[present]).tolist())):
        part = rows[present & (files == file)]
        first_ts, last_ts = cols("first_ts")[part].astype(float), cols("last_ts")[part].astype(float)
        order = np.argsort(first_ts, kind="stable")
        listed = order[: SCAN_MAX_FLOWS - 1]
        if part.shape[0] >= SCAN_MAX_FLOWS:
            listed = np.r_[listed, int(np.nanargmax(last_ts)) if not np.isnan(last_ts).all() else order[-1]]
        frames = cols("first_frame")[part[listed]].astype(np.int64)
        out.append(
            Evidence(
                file=str(file),
                frames=tuple(sorted(set(frames.tolist()))),
                first_ts=_nan_min(first_ts),
                last_ts=-_nan_min(-last_ts),
                flow_ids=tuple(sorted(set(cols("flow_id")[part[listed]].tolist()))),
                wireshark_filter=wireshark_filter,
            )
        )
    return tuple(out)
