"""Second engines beside the native pipeline: Wireshark's tshark, and the cross-check of both.

``tshark`` reads what only Wireshark's dissectors do well (TLS decrypted with a key log, so HTTP and
WebSocket upgrades inside ``wss://`` become visible); ``verify`` runs both engines on the same
captures and lists where they disagree.
"""

from __future__ import annotations

__all__ = ["tshark", "verify"]
