"""The protocols stage's contract.

Parsers (``dns.py``, ``tls.py``, ``quic.py``, ``http.py``) are pure functions over bytes. They raise
:class:`NeedData` when the bytes end before the message does (truncated: maybe more segments will
come) and :class:`ParseError` when the bytes cannot be this protocol (malformed). Callers turn either
into an :class:`~helix_audit.model.Anomaly`.

``Extractor`` (``extract.py``) is the stateful part: fed every decoded batch with its flow ids, it
picks the few packets that need parsing (DNS ports, first payload bytes of each TCP direction,
HTTP-looking payloads, QUIC Initials), reassembles TCP stream starts (out of order, retransmitted,
overlapping), runs the parsers and builds observations.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of parser errors (never escapes the protocols stage)."""


class NeedData(ProtocolError):
    """The message is truncated: the bytes end before it does."""


class ParseError(ProtocolError):
    """The bytes are not a valid message of this protocol."""
