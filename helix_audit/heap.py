"""The C heap of the command-line process kept close to what is live.

glibc's malloc serves a request from its heap unless it is at least ``M_MMAP_THRESHOLD`` bytes, and
it raises that threshold (up to 32 MiB) each time a mapped block is freed. An audit frees numpy
arrays of a few MiB per batch while long-lived observations are allocated between them, so after
the first batches those arrays land in the heap, which then cannot shrink past the live objects
above them: on the 2M-packet benchmark 90-100 MiB of the peak RSS was such free heap. Fixing the
threshold at 256 KiB (which also stops the adjustment) maps every large array on its own and
returns it to the system when freed; small objects are unaffected. Measured: 488 -> 389 MiB after
the scan, the same speed. Only the CLI calls this: a process setting, not a library's to change.

Report writing is the exception (:func:`roomy_heap`): it encodes ~100 MB of text in buffers of a
few MiB, allocated and freed chunk after chunk. Mapped one by one, every page of every buffer was a
fresh page fault: 0.2 s of the benchmark's 0.8 s report. In the heap they reuse the same pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 256 * 1024
ROOMY = 64 * 1024 * 1024

_bound: dict[str, object] = {}  # "mallopt", "threshold": set once bound_heap succeeded; "libc"


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt; ``libc.so.6`` first (find_library costs a millisecond or two)."""
    try:
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt; their allocators differ anyway
        return None
    _bound["libc"] = libc if hasattr(libc, "malloc_trim") else None
    return mallopt


def _set(mallopt: Callable[[int, int], int], threshold: int) -> bool:
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))


def bound_heap(threshold: int = THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds at ``threshold`` bytes; False where not glibc."""
    mallopt = _mallopt()
    if mallopt is None or not _set(mallopt, threshold):
        return False
    _bound.update(mallopt=mallopt, threshold=threshold)
    return True


def trim() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim(0)``: the top of the
    heap and every free page inside it); False unless :func:`bound_heap` was called.

    Between report formats: each one's buffers are freed when it ends, but under
    :func:`roomy_heap` they stay in the heap, and the next format's peak came on top of them
    (the default bundle's peak RSS grew by ~40 MiB a format). A few milliseconds."""
    if "mallopt" not in _bound:
        return False
    libc = _bound.get("libc")
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))  # type: ignore[attr-defined]


@contextmanager
def roomy_heap(threshold: int = ROOMY) -> Iterator[None]:
    """Within the block, blocks below ``threshold`` come from the heap and stay there when freed;
    after it, :func:`bound_heap`'s thresholds again. Does nothing unless bound_heap was called."""
    mallopt = _bound.get("mallopt")
    if mallopt is None:
        yield
        return
    _set(mallopt, threshold)  # type: ignore[arg-type]
    try:
        yield
    finally:
        _set(mallopt, int(_bound["threshold"]))  # type: ignore[arg-type, call-overload]
