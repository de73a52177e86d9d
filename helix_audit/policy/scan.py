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

from ..arrays import sorted_unique
from ..model import Evidence, Finding, Severity
from .chunked import CHUNK, earliest, factorize_rows, last_in_order, last_of, nan_bounds
from .findings import MAX_FRAMES, _addr_key, finding_id
from .flowcodes import FlowCodes
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


def scan_findings(
    cols: Columns, inbound: np.ndarray, accepted: np.ndarray, codes: FlowCodes
) -> tuple[np.ndarray, list[Finding]]:
    """(mask of the flow rows that became scan findings, the findings). ``inbound``: rows with
    verdict ``inbound``; ``accepted``: per row, did the responder accept (else: attempted);
    ``codes``: the table's :class:`FlowCodes` (addresses and transports need no hashing here)."""
    taken = np.zeros(len(cols), dtype=bool)
    cand = inbound & ~accepted & codes.equals("transport", "tcp", "udp")
    cand &= cols("confidence") != "low"
    narrow: type[np.integer] = np.int32 if len(cols) < 1 << 30 else np.int64  # half the memory
    idx = positions(cand, narrow)
    del cand
    if idx.shape[0] < SCAN_MIN:
        return taken, []
    group, key, dsts = _keys(cols, idx, narrow, codes)
    pairs = sorted_unique(key, in_place=True)
    del key
    span = len(dsts) * _PORT_SPAN  # pair keys of one (source, transport) group: [g * span, (g + 1) * span)
    # pairs are sorted: each group's are one run, found by bisection (no pair-sized ``pairs // span``)
    bounds = np.searchsorted(pairs, np.arange(int(group.max()) + 2, dtype=np.int64) * span)
    scanner = np.diff(bounds) >= SCAN_MIN
    hit = scanner[group]
    if not hit.any():
        return taken, []
    rows, groups = (idx, group) if hit.all() else (idx[hit], group[hit])
    del idx, group, hit
    taken[rows] = True
    if groups.min() == groups.max():  # one scanner: already in frame order
        parts = [rows]
    else:
        order = np.argsort(groups, kind="stable")
        parts = np.split(rows[order], np.flatnonzero(np.diff(groups[order])) + 1)
    del rows, groups
    found = np.flatnonzero(scanner)
    starts, ends = bounds[found], bounds[found + 1]
    answered = _accepted_counts(cols, inbound & accepted)
    out = []
    for k, part in enumerate(parts):
        probed = pairs[starts[k] : ends[k]]
        probed %= span  # in place: each group reads its own range of ``pairs`` only
        out.append(_finding(cols, part, probed, dsts, answered, codes))
    return taken, out


def _keys(
    cols: Columns, idx: np.ndarray, narrow: type[np.integer], codes: FlowCodes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate row: its (source, transport) group, and its pair key ``group * span + sandbox
    * 65536 + port`` (int64, ``span``: the sandboxes' count * 65536), and the sandboxes' addresses
    by code (the table's own codes, read at the rows). Built a chunk at a time: the peak of a
    SYN scan's classification is these two arrays, with no row-sized temporaries beside them."""
    orig, resp, addresses = codes.hosts()
    t_code, transports = codes.column("transport")
    port = cols("resp_p")
    span = len(addresses) * _PORT_SPAN
    group = np.empty(idx.shape[0], dtype=narrow)
    key = np.empty(idx.shape[0], dtype=np.int64)
    for lo in range(0, idx.shape[0], CHUNK):
        at, rows = slice(lo, lo + CHUNK), idx[lo : lo + CHUNK]
        g = orig[rows].astype(narrow, copy=False) * len(transports)
        g += t_code[rows]
        group[at] = g
        k = key[at]
        k[:] = resp[rows]
        k *= _PORT_SPAN
        k += port[rows]
        k += g.astype(np.int64) * span
    return group, key, np.asarray(addresses, dtype=object)


def positions(mask: np.ndarray, kind: type[np.integer]) -> np.ndarray:
    """``np.flatnonzero(mask).astype(kind)`` a chunk at a time (no int64 array of every position)."""
    out = np.empty(int(np.count_nonzero(mask)), dtype=kind)
    k = 0
    for lo in range(0, mask.shape[0], CHUNK):
        got = np.flatnonzero(mask[lo : lo + CHUNK])
        got += lo
        out[k : k + got.shape[0]] = got
        k += got.shape[0]
    return out


def _accepted_counts(cols: Columns, accepted: np.ndarray) -> dict[tuple[str, str], int]:
    """(source, transport) -> accepted inbound connections (named in the scan's message)."""
    at = np.flatnonzero(accepted)
    if at.shape[0] == 0:
        return {}
    pairs = pd.DataFrame({"src": cols("orig_h")[at], "transport": cols("transport")[at]})
    counts = pairs.groupby(["src", "transport"], sort=False).size()
    return {(str(s), str(t)): int(n) for (s, t), n in counts.items()}


def _counts(rows: np.ndarray, known: tuple[np.ndarray, list[object]]) -> list[tuple[str, int]]:
    """(value, count) of a column at ``rows``, most frequent first, ties in sorted order; missing
    values count as ``-``. ``known``: the column's codes and values (:meth:`FlowCodes.column`)."""
    total = np.zeros(len(known[1]) + 1, dtype=np.int64)
    for lo in range(0, rows.shape[0], CHUNK):  # bincount takes intp: 8 B a row if whole
        total += np.bincount(known[0][rows[lo : lo + CHUNK]].astype(np.intp) + 1, minlength=total.shape[0])
    n = total.tolist()
    found = [("-", n[0])] if n[0] else []
    found += [(str(u), c) for u, c in zip(known[1], n[1:], strict=True) if c]
    return sorted(found, key=lambda vc: (-vc[1], vc[0]))


def _finding(
    cols: Columns,
    rows: np.ndarray,
    probed: np.ndarray,
    dsts: pd.Index | np.ndarray,
    accepted: dict[tuple[str, str], int],
    codes: FlowCodes,
) -> Finding:
    """The finding of one scanner's probes: ``rows`` (positions, frame order), ``probed`` (its
    distinct (sandbox code in ``dsts``, port) pairs as ``code * 65536 + port``)."""
    src, transport = str(cols("orig_h")[rows[0]]), str(cols("transport")[rows[0]])
    seen_port = np.zeros(_PORT_SPAN, dtype=bool)
    seen_dst = np.zeros(len(dsts), dtype=bool)
    for lo in range(0, probed.shape[0], CHUNK):  # up to a pair a flow: no pair-sized temporaries
        seen_port[probed[lo : lo + CHUNK] % _PORT_SPAN] = True
        seen_dst[probed[lo : lo + CHUNK] // _PORT_SPAN] = True
    port_list = np.flatnonzero(seen_port)
    sandboxes = sorted((str(d) for d in dsts[seen_dst]), key=_addr_key)
    pairs = int(probed.shape[0])
    counts = _counts(rows, codes.column("conn_state"))
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
    packets = sum(  # a chunk at a time: no gathered copy of the counters of every row
        cols(c)[rows[lo : lo + CHUNK]].sum()
        for c in ("orig_pkts", "resp_pkts")
        for lo in range(0, len(rows), CHUNK)
    )
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
    codes, names = factorize_rows(cols("file"), rows)
    first, last = cols("first_ts"), cols("last_ts")
    out = []
    named = names.tolist()
    for file in sorted(set(named)):
        part = rows if len(named) == 1 and codes.min() == 0 else rows[codes == named.index(file)]
        listed = earliest(first, part, SCAN_MAX_FLOWS - 1)
        if part.shape[0] >= SCAN_MAX_FLOWS:
            end = last_of(last, part)
            listed = np.r_[listed, end if end is not None else last_in_order(first, part)]
        frames = cols("first_frame")[part[listed]].astype(np.int64)
        out.append(
            Evidence(
                file=str(file),
                frames=tuple(sorted(set(frames.tolist()))),
                first_ts=nan_bounds(first, part)[0],
                last_ts=nan_bounds(last, part)[1],
                flow_ids=tuple(sorted(set(cols("flow_id")[part[listed]].tolist()))),
                wireshark_filter=wireshark_filter,
            )
        )
    return tuple(out)
