"""Evidence: the frames worth opening, the time range, the flows and a Wireshark display filter
of a finding, built from its flow rows (one Evidence per input file) or merged from the
observations behind it.

Most findings are about one flow or a few: those paths work on Python values (numpy's per-call
cost exceeds the work), and :func:`single_flow_evidence` reads the one-flow groups' columns in
one pass for all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from ..flows.blob import TextBlobArray
from ..model import Evidence
from .flowrows import Columns, FlowRows

MAX_FRAMES = 64
MAX_STREAMS_IN_FILTER = 50


#: a plain frozen dataclass (instance dict, no ``__post_init__``, these six fields)
_PLAIN = (
    "__slots__" not in vars(Evidence)
    and not hasattr(Evidence, "__post_init__")
    and [f.name for f in dataclasses.fields(Evidence)]
    == ["file", "frames", "first_ts", "last_ts", "flow_ids", "wireshark_filter"]
)
_new = object.__new__


def new_evidence(
    file: str,
    frames: tuple[int, ...],
    first_ts: float,
    last_ts: float,
    flow_ids: tuple[int, ...] = (),
    wireshark_filter: str = "",
) -> Evidence:
    """``Evidence(...)``, stored without the frozen dataclass's per-field ``object.__setattr__``
    (~10^4 per audit; the constructor itself when that would not be the same object)."""
    if not _PLAIN:
        return Evidence(file, frames, first_ts, last_ts, flow_ids, wireshark_filter)
    out = _new(Evidence)
    fields = out.__dict__
    fields["file"] = file
    fields["frames"] = frames
    fields["first_ts"] = first_ts
    fields["last_ts"] = last_ts
    fields["flow_ids"] = flow_ids
    fields["wireshark_filter"] = wireshark_filter
    return out


def cells(cols: Columns, name: str, pos: np.ndarray) -> np.ndarray:
    """``cols(name)[pos]``, without the whole column's object array when the column is a text blob
    (``key_frames``: the strs of these rows are made, not those of every flow, ~10 ms and ~60 B a
    flow for nothing on the benchmark; the report writers read it a chunk at a time too)."""
    if name not in cols.arrays and name in cols.frame.columns:  # not replaced, not converted yet
        array = cols.frame[name].array
        if isinstance(array, TextBlobArray):
            return array.take(pos).to_numpy()
    return cols(name)[pos]


def merge_evidence(items: Iterable[Evidence]) -> tuple[Evidence, ...]:
    """One Evidence per file out of many (observation-based findings)."""
    items = tuple(items)
    if len(items) == 1 and _merged(items[0]):
        return items
    by_file: dict[str, list[Evidence]] = {}
    for ev in items:
        by_file.setdefault(ev.file, []).append(ev)
    out = []
    for file, evs in sorted(by_file.items()):
        frames = tuple(sorted({f for e in evs for f in e.frames}))[:MAX_FRAMES]
        fids = tuple(sorted({f for e in evs for f in e.flow_ids}))
        filters = list(dict.fromkeys(e.wireshark_filter for e in evs if e.wireshark_filter))
        out.append(
            Evidence(
                file,
                frames,
                min(e.first_ts for e in evs),
                max(e.last_ts for e in evs),
                fids,
                " || ".join(filters),
            )
        )
    return tuple(out)


def _merged(ev: Evidence) -> bool:
    """Is ``ev`` already what merging it alone gives (frames and flows sorted, unique, few)?"""
    return (
        isinstance(ev.frames, tuple)
        and isinstance(ev.flow_ids, tuple)
        and len(ev.frames) <= MAX_FRAMES
        and all(a < b for a, b in zip(ev.frames, ev.frames[1:], strict=False))
        and all(a < b for a, b in zip(ev.flow_ids, ev.flow_ids[1:], strict=False))
    )


def flow_evidence(rows: FlowRows | pd.DataFrame) -> tuple[Evidence, ...]:
    """One Evidence per input file: frames worth opening, time range, flow ids, a display filter."""
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    if len(rows) == 1:
        return _one_flow_evidence(rows)
    if len(rows) <= SMALL:
        return _few_flows_evidence(rows)
    return _many_flows_evidence(rows)


def _many_flows_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    files = rows.col("file")
    out = []
    for file in sorted(set(files[pd.notna(files)].tolist())):
        part = rows.take(np.flatnonzero(files == file)) if len(rows) > 1 else rows
        frames: list[int] = []
        head = np.argsort(part.col("first_ts"), kind="stable")[: MAX_FRAMES // 4]
        keys_of = cells(part.cols, "key_frames", part.pos[head])
        for first, keys in zip(part.col("first_frame")[head], keys_of, strict=True):
            frames.append(int(first))
            frames += key_frames_of(keys)
        out.append(
            Evidence(
                file=str(file),
                frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
                first_ts=_nan_min(part.col("first_ts")),
                last_ts=-_nan_min(-part.col("last_ts")),
                flow_ids=tuple(np.sort(part.col("flow_id")).tolist()),
                wireshark_filter=display_filter(part),
            )
        )
    return tuple(out)


#: Up to this many flows, :func:`flow_evidence` works on Python lists (numpy's per-call cost
#: exceeds the work on a few values).
SMALL = 32


def _few_flows_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    """:func:`flow_evidence` of a few flows, same result (:func:`few_flows_evidence` of the one
    group; a NaN first time takes numpy's sort order, the array path's)."""
    found = few_flows_evidence([rows])[0]
    return found if found is not None else _many_flows_evidence(rows)


def few_flows_evidence(groups: list[FlowRows]) -> list[tuple[Evidence, ...] | None]:
    """:func:`flow_evidence` of many groups of a few flows (2 to :data:`SMALL`): each column read
    once per column set for the rows of all of them (one fancy-index) instead of about eight
    reads a group; None for a group the per-group path must take (a NaN first time: numpy's sort
    order)."""
    out: list[tuple[Evidence, ...] | None] = [None] * len(groups)
    for cols, members in _by_columns(groups).items():
        parts = [groups[i].pos for i in members]
        pos = np.concatenate(parts)
        bounds = np.cumsum([0, *map(len, parts)]).tolist()
        values = {name: cells(cols, name, pos).tolist() for name in _FEW_COLUMNS}
        for proto in ("tcp", "udp"):
            if cols.has(f"{proto}_stream"):
                values[f"{proto}_stream"] = cols(f"{proto}_stream")[pos].tolist()
        for j, i in enumerate(members):
            out[i] = _few_of(values, bounds[j], bounds[j + 1])
    return out


def _by_columns(groups: list[FlowRows]) -> dict[Any, list[int]]:
    """The groups' indexes by the column set their rows point into (by identity)."""
    found: dict[int, tuple[Any, list[int]]] = {}
    for i, rows in enumerate(groups):
        found.setdefault(id(rows.cols), (rows.cols, []))[1].append(i)
    return dict(found.values())


def _few_of(values: dict[str, list[Any]], start: int, stop: int) -> tuple[Evidence, ...] | None:
    """The few-flow evidence of the rows ``start:stop`` of ``values`` (column -> every row's value);
    None when the first times hold a NaN."""
    first_ts = [float(t) for t in values["first_ts"][start:stop]]
    if any(t != t for t in first_ts):
        return None
    files = values["file"][start:stop]
    if not isna(files[0]) and files.count(files[0]) == len(files):  # one file (the usual): slices
        return (_file_evidence(files[0], first_ts, _Rows(values, slice(start, stop))),)
    out = []
    for file in sorted({f for f in files if not isna(f)}):
        at = [start + i for i, f in enumerate(files) if f == file]
        out.append(_file_evidence(file, [first_ts[k - start] for k in at], _Rows(values, at)))
    return tuple(out)


class _Rows:
    """Some rows of :func:`few_flows_evidence`'s column values, read as :class:`FlowRows` are
    (``values``, ``has``, ``len``: what :func:`display_filter` asks)."""

    __slots__ = ("columns", "at")

    def __init__(self, columns: dict[str, list[Any]], at: slice | list[int]) -> None:
        self.columns, self.at = columns, at

    def __len__(self) -> int:
        return len(self.values("flow_id"))

    def values(self, name: str) -> list[Any]:
        column = self.columns[name]
        return column[self.at] if isinstance(self.at, slice) else [column[k] for k in self.at]

    def has(self, name: str) -> bool:
        return name in self.columns


def _file_evidence(file: Any, first_ts: list[float], rows: _Rows) -> Evidence:
    """The Evidence of one file's rows of a few-flow group (``first_ts``: their first times, no
    NaN)."""
    head = sorted(range(len(first_ts)), key=first_ts.__getitem__)[: MAX_FRAMES // 4]
    first_frames, key_frames = rows.values("first_frame"), rows.values("key_frames")
    frames: list[int] = []
    for i in head:
        frames.append(int(first_frames[i]))
        frames += key_frames_of(key_frames[i])
    last = [v for v in map(float, rows.values("last_ts")) if v == v]
    return new_evidence(
        file=str(file),
        frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
        first_ts=min(first_ts),
        last_ts=max(last) if last else float("nan"),
        flow_ids=tuple(sorted(rows.values("flow_id"))),
        wireshark_filter=display_filter(rows),
    )


def _one_flow_evidence(rows: FlowRows) -> tuple[Evidence, ...]:
    """:func:`flow_evidence` of a single flow (most findings), without the array work."""
    cols, pos = rows.cols, int(rows.pos[0])
    proto = cols("transport")[pos]
    stream = cols(f"{proto}_stream")[pos] if proto in ("tcp", "udp") and cols.has(f"{proto}_stream") else None
    values = [cells(cols, name, rows.pos)[0] for name in _ONE_FLOW_COLUMNS]
    return _flow_evidence_of(*values, proto, stream)  # type: ignore[call-arg]


#: What :func:`_flow_evidence_of` reads of a flow, besides its transport and stream index.
_ONE_FLOW_COLUMNS = (
    "file",
    "first_frame",
    "key_frames",
    "first_ts",
    "last_ts",
    "flow_id",
    "resp_h",
    "orig_h",
    "resp_p",
)
#: What :func:`few_flows_evidence` reads of every row (plus the stream columns, when present).
_FEW_COLUMNS = (*_ONE_FLOW_COLUMNS, "transport")


def _flow_evidence_of(
    file: Any,
    first_frame: Any,
    key_frames: Any,
    first_ts: Any,
    last_ts: Any,
    fid: Any,
    resp_h: str,
    orig_h: str,
    resp_p: Any,
    proto: str,
    stream: Any,
) -> tuple[Evidence, ...]:
    """The evidence of one flow from its values (``stream``: its tshark stream index, None when
    unknown)."""
    if isna(file):
        return ()
    frames = [int(first_frame)]
    frames += key_frames_of(key_frames)
    if isna(stream):
        filt = _address_filter([resp_h], [orig_h], {proto}, {int(resp_p)})
    else:
        filt = f"{proto}.stream eq {int(stream)}"
    return (
        new_evidence(
            file=str(file),
            frames=tuple(sorted(set(frames)))[:MAX_FRAMES],
            first_ts=float(first_ts),
            last_ts=float(last_ts),
            flow_ids=(fid if type(fid) is int else fid.item() if hasattr(fid, "item") else fid,),
            wireshark_filter=filt,
        ),
    )


def single_flow_evidence(groups: list[FlowRows]) -> list[tuple[Evidence, ...]]:
    """:func:`flow_evidence` of many one-flow groups: each column read once per column set (one
    fancy-index for all of them) instead of once per group."""
    out: list[tuple[Evidence, ...]] = [()] * len(groups)
    by_cols: dict[int, list[int]] = {}
    for i, rows in enumerate(groups):
        by_cols.setdefault(id(rows.cols), []).append(i)
    for members in by_cols.values():
        cols = groups[members[0]].cols
        pos = np.asarray([int(groups[i].pos[0]) for i in members], dtype=np.int64)
        values = [cells(cols, name, pos).tolist() for name in _ONE_FLOW_COLUMNS]
        protos = cols("transport")[pos].tolist()
        streams: list[Any] = [None] * len(members)
        for proto in ("tcp", "udp"):
            if cols.has(f"{proto}_stream"):
                these = np.flatnonzero(cols("transport")[pos] == proto)
                for j, v in zip(these.tolist(), cols(f"{proto}_stream")[pos[these]].tolist(), strict=True):
                    streams[j] = v
        for j, row in enumerate(zip(*values, protos, streams, strict=True)):
            out[members[j]] = _flow_evidence_of(*row)
    return out


def key_frames_of(value: object) -> list[int]:
    """The frame numbers of a ``key_frames`` cell (``"3,5,9"``; missing or malformed parts are
    skipped)."""
    return [int(k) for k in str(value or "").split(",") if k.strip().isdigit()]


def isna(value: object) -> bool:
    """``pd.isna`` of one scalar, without its dispatch for the values flow columns hold (str, int,
    float: NaN, None, ``pd.NA``); anything else is asked of pandas."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float):
        return value != value
    if isinstance(value, (str, int)):
        return False
    return bool(pd.isna(value))


def _nan_min(values: np.ndarray) -> float:
    """``Series.min()``: NaN skipped, NaN when nothing is left."""
    values = values.astype(float)
    values = values[~np.isnan(values)]
    return float(values.min()) if values.shape[0] else float("nan")


def display_filter(rows: FlowRows | _Rows | pd.DataFrame) -> str:
    """``tcp.stream eq 3`` / ``tcp.stream in {3, 5}`` (Wireshark 4 wants the commas) when tshark's
    stream indexes are known, else an address and port filter."""
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    transports = set(rows.values("transport"))
    if len(transports) == 1 and (proto := next(iter(transports))) in ("tcp", "udp"):
        name = f"{proto}_stream"
        if rows.has(name) and len(rows) <= MAX_STREAMS_IN_FILTER:
            streams = rows.values(name)
            if not any(isna(s) for s in streams):
                values = sorted({int(s) for s in streams})
                if len(values) == 1:
                    return f"{proto}.stream eq {values[0]}"
                return f"{proto}.stream in {{{', '.join(map(str, values))}}}"
    return address_filter(rows)


def address_filter(rows: FlowRows | _Rows | pd.DataFrame) -> str:
    if isinstance(rows, pd.DataFrame):
        rows = FlowRows.of(rows)
    return _address_filter(
        rows.values("resp_h"),
        rows.values("orig_h"),
        set(rows.values("transport")),
        {int(p) for p in rows.values("resp_p")},
    )


def _address_filter(dst: list[str], src: list[str], transports: set[str], port_set: set[int]) -> str:
    dsts, srcs = sorted(set(dst)), sorted(set(src))
    parts = (
        [_addr_clause(dsts, "dst"), _addr_clause(srcs, "src")]
        if len(srcs) <= 5
        else [_addr_clause(dsts, "dst")]
    )
    ports = sorted(port_set)
    if len(transports) == 1 and next(iter(transports)) in ("tcp", "udp") and len(ports) <= 5:
        proto = next(iter(transports))
        parts.append(" || ".join(f"{proto}.dstport == {p}" for p in ports))
    return " && ".join(f"({p})" if "||" in p else p for p in parts if p)


def _addr_clause(addrs: Iterable[str], side: str) -> str:
    clauses = []
    for addr in addrs:
        family = "ipv6" if ":" in addr else "ip"
        clauses.append(f"{family}.{side} == {addr}")
    return " || ".join(clauses)
