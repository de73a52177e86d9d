"""Evidence captures: one capture per finding holding exactly the packets of its flows.

``write_evidence(findings, flows, inputs, out_dir)`` makes ONE extra pass over each input for all
findings together, driven by the selectors of :mod:`.evidence_plan` (flow keys + frame windows, and
frame numbers). Per batch: decode (vectorised), hash every row's flow key with numpy, test the low bits
against a bitmap of the selected hashes, ``searchsorted`` the survivors, and check only those exactly
(full key, frame window) before mapping them to their findings. Unselected packets never see Python.
Non-first IP fragments carry no ports: they are taken when their (protocol, address pair) is that of a
selected flow and they fall in its frame window, so Wireshark can reassemble the datagrams (as its
"export specified packets" does with depended-upon frames). Reading a file stops once past its last
selected frame. Output is written by :mod:`.evidence_pcap` (bounded memory and open files, atomic).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from helix_audit.arrays import sorted_unique
from helix_audit.capture import RecordBatch, open_capture
from helix_audit.decode.core import Decoder
from helix_audit.decode.interface import ST_FRAGMENT, PacketColumns
from helix_audit.heap import trim
from helix_audit.model import Finding
from helix_audit.report.evidence_pcap import Spool
from helix_audit.report.evidence_plan import (
    BITMAP_SIZE,
    FRAME_BITS,
    FileSelection,
    RowKeys,
    canonical,
    key_hash,
    pair_hash,
    plan,
)

# The pass holds one batch of mapped packet bytes plus the spool: on the 2M-packet benchmark (whose
# findings take nearly every packet) 65536 rows (~50 MB mapped) and a 64 MiB spool added ~200 MiB
# to the peak RSS; 16384 rows and 32 MiB ~60 MiB; these ~25 MiB (runs of input records are only
# byte ranges in the spool, see evidence_pcap). Same CPU time; 4096 rows cost 20% more. Unlike the
# packet stages, this pass has no per-batch budgets: the batch size changes nothing in the output.
BATCH = 8192  # rows per batch: smaller batches keep the decode columns and mapped pages few
SPOOL_LIMIT = 8 << 20  # buffered evidence bytes before spilling to the temp files
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def evidence_name(finding_id: str) -> str:
    """File stem of a finding's capture (``<id>.pcap`` / ``<id>.pcapng``): the id, filename-safe."""
    return _UNSAFE.sub("_", finding_id).lstrip(".") or "finding"


# ------------------------------------------------------------------------------------------ the pass


def _expand(rows: np.ndarray, which: np.ndarray, start: np.ndarray, items: np.ndarray) -> np.ndarray:
    """(finding, row) pairs as finding << 32 | row, from rows matched to CSR entries ``which``."""
    counts = start[which + 1] - start[which]
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    base = np.repeat(start[which] - (np.cumsum(counts) - counts), counts)
    fidx = items[base + np.arange(total)]
    return (fidx << 32) | np.repeat(rows, counts)


def frame_pairs(frame: np.ndarray, sel: FileSelection) -> np.ndarray:
    if sel.frames.shape[0] == 0 or frame.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.searchsorted(sel.frames, frame)
    pos_c = np.minimum(pos, sel.frames.shape[0] - 1)
    rows = np.flatnonzero(sel.frames[pos_c] == frame)
    return _expand(rows.astype(np.int64), pos_c[rows], sel.frame_start, sel.frame_findings)


def flow_pairs(cols: PacketColumns, sel: FileSelection) -> np.ndarray:
    """(finding, row) pairs of the batch's rows that belong to a selected flow."""
    if sel.hashes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    rk = RowKeys.of(cols)
    h = key_hash(*rk.parts())
    cand = np.flatnonzero(rk.ok & sel.bitmap[h & np.uint64(BITMAP_SIZE - 1)])
    kid = np.minimum(np.searchsorted(sel.hashes, h[cand]), sel.hashes.shape[0] - 1)
    hit = sel.hashes[kid] == h[cand]
    cand, kid = cand[hit], kid[hit].astype(np.int64)
    if cand.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    frame = cols.frame[cand].astype(np.int64)
    pos = np.searchsorted(sel.entry_pos, kid << FRAME_BITS | frame, "right") - 1
    pc = np.maximum(pos, 0)
    good = (
        (pos >= 0)
        & (sel.entry_pos[pc] >> FRAME_BITS == kid)
        & (frame <= sel.entry_hi[pc])
        & (sel.entry_key[pc] == canonical(*rk.parts(cand))).all(axis=1)
    )
    return _expand(cand[good], pc[good], sel.entry_start, sel.entry_findings)


def fragment_pairs(cols: PacketColumns, sel: FileSelection) -> np.ndarray:
    """(finding, row) pairs of non-first IP fragments between a selected flow's two hosts, in its window."""
    rows = np.flatnonzero((cols.status == ST_FRAGMENT) & (cols.ipver > 0))
    if rows.shape[0] == 0 or sel.pair_hashes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    proto = cols.proto[rows].astype(np.int64)
    shi, slo, dhi, dlo = (a[rows] for a in (cols.src_hi, cols.src_lo, cols.dst_hi, cols.dst_lo))
    ph = pair_hash(proto, shi, slo, dhi, dlo)
    lo = np.searchsorted(sel.pair_hashes, ph, "left")
    n = np.searchsorted(sel.pair_hashes, ph, "right") - lo
    idx = np.repeat(np.arange(rows.shape[0]), n)
    ent = sel.pair_entry[np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))]
    key, frame = sel.entry_key[ent], cols.frame[rows[idx]].astype(np.int64)
    a_is_src = (
        (key[:, 1] == shi[idx]) & (key[:, 2] == slo[idx]) & (key[:, 4] == dhi[idx]) & (key[:, 5] == dlo[idx])
    )
    a_is_dst = (
        (key[:, 1] == dhi[idx]) & (key[:, 2] == dlo[idx]) & (key[:, 4] == shi[idx]) & (key[:, 5] == slo[idx])
    )
    first = sel.entry_pos[ent] & ((1 << FRAME_BITS) - 1)
    good = (key[:, 0] == proto[idx]) & (a_is_src | a_is_dst) & (first <= frame) & (frame <= sel.entry_hi[ent])
    return _expand(rows[idx[good]], ent[good], sel.entry_start, sel.entry_findings)


def _take(spool: Spool, batch: RecordBatch, pairs: np.ndarray, source: int | None = None) -> None:
    pairs = sorted_unique(pairs)  # sorted by finding, then row; duplicates (frame + flow) dropped
    fidx, rows = pairs >> 32, pairs & 0xFFFF_FFFF
    cuts = np.flatnonzero(np.diff(fidx)) + 1
    for part in np.split(np.arange(pairs.shape[0]), cuts):
        r = rows[part]
        spool.add(
            int(fidx[part[0]]),
            batch.data,
            batch.offset[r],
            batch.caplen[r],
            batch.wirelen[r],
            batch.ts_ns[r],
            batch.linktype[r],
            source,
        )


def scan_file(path: Path, sel: FileSelection, spool: Spool, batch_size: int = BATCH) -> None:
    """The evidence pass over one input."""
    cap = open_capture(path)
    decoder = Decoder() if sel.hashes.shape[0] else None
    stop = sel.last_frame
    source = None if cap.gzip else spool.open_source(path, cap.data)
    try:
        for batch in cap.batches(batch_size):
            if len(batch) == 0:
                continue
            if int(batch.frame[0]) > stop:
                break
            parts = [frame_pairs(batch.frame.astype(np.int64), sel)]
            if decoder is not None:
                cols = decoder.decode(batch)
                parts += [flow_pairs(cols, sel), fragment_pairs(cols, sel)]
            pairs = np.concatenate(parts)
            if pairs.shape[0]:
                _take(spool, batch, pairs, source)
    except BaseException:
        spool.close_source(source, copy=False)  # the caller discards the spool
        raise
    spool.close_source(source)


def _ns_inputs(inputs: Sequence[Path], files: Iterable[int]) -> dict[int, bool]:
    """Input index -> True when its timestamps are finer than microseconds."""
    return {i: open_capture(inputs[i]).info.ts_resolution != "us" for i in files}


def write_evidence(
    findings: Sequence[Finding],
    flows: pd.DataFrame,
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    batch_size: int = BATCH,
    spool_limit: int = SPOOL_LIMIT,
    durable: bool = False,
    digests: dict[Path, str] | None = None,
) -> dict[str, Path]:
    """Write ``out_dir/<id>.pcap`` (one link type) or ``.pcapng`` (mixed) per finding; returns
    finding id -> file for every finding that has at least one packet in the inputs.
    ``digests``: filled with file -> SHA-256 taken while writing, where it could be (SHA256SUMS)."""
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    selections = plan(findings, flows, inputs)
    trim()  # the plan's dicts are freed: the pass's batches do not come on top of their pages
    ns_by_file = _ns_inputs(inputs, selections)
    uses: dict[int, set[int]] = defaultdict(set)
    for i, sel in selections.items():
        for arr in (sel.entry_findings, sel.frame_findings):
            for fi in sorted_unique(arr).tolist():
                uses[fi].add(i)
    ns = [any(ns_by_file[i] for i in uses[fi]) for fi in range(len(findings))]
    spool = Spool(out_dir, [evidence_name(f.id) for f in findings], ns, spool_limit, durable)
    try:
        for i, sel in selections.items():
            scan_file(inputs[i], sel, spool, batch_size)
        written = spool.finish()
    except BaseException:
        spool.discard()
        raise
    if digests is not None:
        digests.update((written[i], d) for i, d in spool.digests.items())
    return {findings[i].id: p for i, p in written.items()}
