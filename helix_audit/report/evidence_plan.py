"""Selectors for the evidence pass: which packets of which input belong to which finding.

Every flow of every finding becomes a *selector* per input file: its canonical key (the flow table's:
protocol, lower (address, port) endpoint first; ICMP keyed by (type, counterpart type or code)), a
64-bit hash of that key that is symmetric in the two endpoints (so rows need no reordering to be
hashed), and the flow's frame window in that file: from ``first_frame`` in ``file`` to ``last_frame``
in the last of ``files``. Flows of one 5-tuple never overlap in capture order, so the window tells
port reuse apart exactly, whatever the timestamps do. Frames named in a finding's evidence (the DNS
lookups behind its name) and ICMP errors quoting its flows (``icmp_frames``) are selected by number.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helix_audit.arrays import sorted_unique
from helix_audit.decode.interface import ST_OK, PacketColumns, str_to_addr
from helix_audit.flows import icmp
from helix_audit.model import Finding

FRAME_BITS = 40
BITMAP_SIZE = 1 << 22  # prefilter: one bool per low-22-bit value of a key hash
NO_END = (1 << FRAME_BITS) - 1
TRANSPORT_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58}
_K = [
    np.uint64(k)
    for k in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
    )
]


def _endpoint(hi: np.ndarray, lo: np.ndarray, port: np.ndarray) -> np.ndarray:
    h = (lo.astype(np.uint64) * _K[1]) ^ (hi.astype(np.uint64) * _K[2]) ^ (port.astype(np.uint64) * _K[3])
    h ^= h >> np.uint64(31)
    return h * _K[4]


def key_hash(
    proto: np.ndarray,
    shi: np.ndarray,
    slo: np.ndarray,
    sp: np.ndarray,
    dhi: np.ndarray,
    dlo: np.ndarray,
    dp: np.ndarray,
) -> np.ndarray:
    """64-bit hash of flow keys, symmetric in the two endpoints (no canonical ordering needed)."""
    h = proto.astype(np.uint64) * _K[0] + _endpoint(shi, slo, sp) + _endpoint(dhi, dlo, dp)
    return h ^ (h >> np.uint64(29))


def pair_hash(
    proto: np.ndarray, shi: np.ndarray, slo: np.ndarray, dhi: np.ndarray, dlo: np.ndarray
) -> np.ndarray:
    """Hash of (protocol, unordered address pair): the key of IP fragments, which carry no ports."""
    zero = np.zeros(proto.shape[0], dtype=np.uint64)
    return key_hash(proto, shi, slo, zero, dhi, dlo, zero)


def canonical(
    proto: np.ndarray,
    shi: np.ndarray,
    slo: np.ndarray,
    sp: np.ndarray,
    dhi: np.ndarray,
    dlo: np.ndarray,
    dp: np.ndarray,
) -> np.ndarray:
    """Rows of (proto, a_hi, a_lo, a_port, b_hi, b_lo, b_port) as uint64, A the lower end."""
    a_first = (shi < dhi) | ((shi == dhi) & ((slo < dlo) | ((slo == dlo) & (sp <= dp))))
    out = np.empty((proto.shape[0], 7), dtype=np.uint64)
    out[:, 0] = proto
    for k, (x, y) in enumerate(((shi, dhi), (slo, dlo), (sp, dp)), start=1):
        out[:, k] = np.where(a_first, x, y)
        out[:, k + 3] = np.where(a_first, y, x)
    return out


@dataclass(frozen=True, eq=False)
class RowKeys:
    """A decoded batch's flow keys (ICMP keyed like the flow table) and which rows are flow packets."""

    ok: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    cols: PacketColumns

    @classmethod
    def of(cls, cols: PacketColumns) -> RowKeys:
        ok = (cols.status == ST_OK) & (cols.ipver > 0)
        ok &= ~icmp.error_mask(cols, ok)
        proto = cols.proto.astype(np.int64)
        sport, dport = cols.sport.astype(np.int64), cols.dport.astype(np.int64)
        is_icmp = (proto == icmp.PROTO_ICMP) | (proto == icmp.PROTO_ICMP6)
        if is_icmp.any():
            dport = np.where(is_icmp, icmp.icmp_key_ports(proto, cols.sport, cols.dport), dport)
        return cls(ok, proto, sport, dport, cols)

    def parts(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, ...]:
        c = self.cols
        return (
            self.proto[rows],
            c.src_hi[rows],
            c.src_lo[rows],
            self.sport[rows],
            c.dst_hi[rows],
            c.dst_lo[rows],
            self.dport[rows],
        )


# ------------------------------------------------------------------------------------------ selectors


@dataclass(frozen=True)
class FileSelection:
    """What to take from one input file. Flow entries sorted by (key id, first frame)."""

    bitmap: np.ndarray  # bool (BITMAP_SIZE): low bits of the selected key hashes
    hashes: np.ndarray  # uint64, sorted unique key hashes
    entry_pos: np.ndarray  # int64: key id << FRAME_BITS | first frame, sorted
    entry_hi: np.ndarray  # int64: last frame of the window
    entry_key: np.ndarray  # uint64 (m x 7): the exact canonical key
    entry_start: np.ndarray  # int64 (m + 1): CSR into entry_findings
    entry_findings: np.ndarray  # int64
    pair_hashes: np.ndarray  # uint64 sorted: pair_hash of every entry (IP fragments)
    pair_entry: np.ndarray  # int64: the entry of each pair hash
    frames: np.ndarray  # int64 sorted unique frames selected by number
    frame_start: np.ndarray  # int64 (k + 1): CSR into frame_findings
    frame_findings: np.ndarray  # int64

    @property
    def last_frame(self) -> int:
        hi = int(self.entry_hi.max(initial=0))
        return max(hi, int(self.frames.max(initial=0)))


def _csr(pairs: dict, keys: list) -> tuple[np.ndarray, np.ndarray]:
    """CSR of each key's finding indexes, sorted and without repeats."""
    groups = [sorted(set(pairs[k])) if len(pairs[k]) > 1 else pairs[k] for k in keys]
    start = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=start[1:])
    items = [i for g in groups for i in g]
    return start, np.array(items, dtype=np.int64)


def _file_selection(flow_sel: dict[tuple, list[int]], frame_sel: dict[int, list[int]]) -> FileSelection:
    """Build the arrays; ``flow_sel`` maps (key tuple, lo, hi) -> finding indexes."""
    entries = sorted(flow_sel)
    keys = np.array([e[0] for e in entries], dtype=np.uint64).reshape(-1, 7)
    h = key_hash(*(keys[:, k] for k in range(7)))
    hashes = sorted_unique(h)
    bitmap = np.zeros(BITMAP_SIZE, dtype=bool)
    bitmap[hashes & np.uint64(BITMAP_SIZE - 1)] = True
    kid = np.searchsorted(hashes, h).astype(np.int64)
    lo = np.array([e[1] for e in entries], dtype=np.int64)
    order = np.lexsort((lo, kid))
    estart, efind = _csr(flow_sel, [entries[i] for i in order])
    frames = sorted(frame_sel)
    fstart, ffind = _csr(frame_sel, frames)
    his = np.array([e[2] for e in entries], dtype=np.int64)
    keys = keys[order]
    ph = pair_hash(*(keys[:, k] for k in (0, 1, 2, 4, 5)))
    porder = np.argsort(ph, kind="stable")
    return FileSelection(
        bitmap,
        hashes,
        (kid << FRAME_BITS | lo)[order],
        his[order],
        keys,
        estart,
        efind,
        ph[porder],
        porder.astype(np.int64),
        np.array(frames, dtype=np.int64),
        fstart,
        ffind,
    )


def _address(text: str, memo: dict[str, tuple[int, int] | None]) -> tuple[int, int] | None:
    """``str_to_addr`` once per distinct address (flows share few: it was a third of ``plan``)."""
    try:
        return memo[text]
    except KeyError:
        pass
    try:
        got: tuple[int, int] | None = str_to_addr(text)
    except ValueError:
        got = None
    memo[text] = got
    return got


def _flow_key(row: dict, memo: dict[str, tuple[int, int] | None] | None = None) -> tuple[int, ...] | None:
    transport = str(row["transport"])
    proto = TRANSPORT_PROTO.get(transport)
    if proto is None and transport.startswith("ip-") and transport[3:].isdigit():
        proto = int(transport[3:])
    memo = {} if memo is None else memo
    a, b = _address(str(row["orig_h"]), memo), _address(str(row["resp_h"]), memo)
    if a is None or b is None:
        return None
    if proto is None:
        return None
    ends = sorted([(*a, int(row["orig_p"])), (*b, int(row["resp_p"]))])
    return (proto, *ends[0], *ends[1])


def _file_index(inputs: Sequence[Path]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, p in enumerate(inputs):
        index.setdefault(str(p), i)
        index.setdefault(os.path.realpath(p), i)
    return index


def _lookup(index: dict[str, int], name: str) -> int | None:
    got = index.get(name)
    return got if got is not None else index.get(os.path.realpath(name))


#: The flow columns ``_select_flow`` reads. A dict per selected flow of all ~50 columns at once was
#: 89 MiB at the peak of the benchmark's evidence pass (60k flows): only these, a chunk at a time.
_ROW_FIELDS = (
    "flow_id", "file", "files", "transport", "orig_h", "orig_p", "resp_h", "resp_p",
    "orig_pkts", "resp_pkts", "first_frame", "last_frame", "icmp_frames",
)  # fmt: skip
ROW_CHUNK = 4096


def plan(
    findings: Sequence[Finding], flows: pd.DataFrame, inputs: Sequence[Path]
) -> dict[int, FileSelection]:
    """Selectors per input index (only inputs that hold something to take).

    Finding indexes are gathered in lists (repeats removed at the end): a set per flow and per
    frame was ~25 MiB of the evidence pass's peak RSS on the benchmark, a one-item list a third."""
    index = _file_index(inputs)
    flow_sel: dict[int, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
    frame_sel: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    wanted: dict[int, list[int]] = defaultdict(list)
    memo: dict[str, tuple[int, int] | None] = {}
    for fi, f in enumerate(findings):
        for fid in f.flow_ids:
            wanted[int(fid)].append(fi)
        for ev in f.evidence:
            file = _lookup(index, ev.file)
            if file is not None:
                for n in ev.frames:
                    frame_sel[file][int(n)].append(fi)
    if wanted and len(flows):
        rows = flows.loc[flows["flow_id"].isin(list(wanted)), [c for c in _ROW_FIELDS if c in flows.columns]]
        for start in range(0, len(rows), ROW_CHUNK):
            for row in rows.iloc[start : start + ROW_CHUNK].to_dict("records"):
                _select_flow(row, wanted[int(row["flow_id"])], index, flow_sel, frame_sel, memo)
    files = set(flow_sel) | set(frame_sel)
    return {i: _file_selection(flow_sel.get(i, {}), frame_sel.get(i, {})) for i in sorted(files)}


def _select_flow(
    row: dict, fis: list[int], index: dict[str, int], flow_sel: dict, frame_sel: dict, memo: dict
) -> None:
    for item in str(row.get("icmp_frames") or "").split(","):
        name, _, num = item.strip().rpartition(":")
        file = _lookup(index, name) if num.isdigit() else None
        if file is not None:
            frame_sel[file][int(num)].extend(fis)
    if int(row.get("orig_pkts") or 0) + int(row.get("resp_pkts") or 0) == 0:
        return
    key = _flow_key(row, memo)
    if key is None:
        return
    names = [n for n in str(row.get("files") or row["file"]).split("|") if n] or [str(row["file"])]
    for name in names:
        file = _lookup(index, name)
        if file is None:
            continue
        lo = int(row["first_frame"]) if name == str(row["file"]) else 0
        hi = int(row["last_frame"]) if name == names[-1] else NO_END
        flow_sel[file][(key, lo, hi)].extend(fis)
