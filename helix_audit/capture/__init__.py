"""Capture sources: pcap, pcapng, gzip, directories; batches of raw records.

``open_capture(path)`` sniffs the magic and memory-maps the file; ``Capture.batches()`` streams
:class:`RecordBatch` es from a one-pass numba walk of the record headers; ``expand_inputs`` turns
files and directories into an ordered list of capture files; ``plan_ranges`` splits a large file
into byte ranges starting on real record boundaries, for parallel runs.
"""

from __future__ import annotations

from .interface import CaptureInfo, RecordBatch
from .partition import plan_ranges
from .source import Capture, expand_inputs, first_timestamp, open_capture

__all__ = [
    "Capture",
    "CaptureInfo",
    "RecordBatch",
    "expand_inputs",
    "first_timestamp",
    "open_capture",
    "plan_ranges",
]
