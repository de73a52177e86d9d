"""Live capture: packets from network interfaces written to a pcapng file, then audited as a file.

Importing this package costs nothing: scapy (raw sockets, BPF compilation) is imported only by
:mod:`.sockets` when a capture starts, so ``helix-audit``'s start-up never pays for it. The
pcapng writer and the reader of its interface statistics live in :mod:`.ngfile` (no scapy).
"""

from __future__ import annotations

from .ngfile import IfaceStats, drop_warnings, read_interface_stats

__all__ = ["IfaceStats", "drop_warnings", "read_interface_stats"]
