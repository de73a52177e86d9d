"""The error hierarchy. Only unusable inputs raise; everything a capture contains becomes data.

Every message names the input first: ``f"{path}: not a pcap or pcapng file"``. The CLI maps these
to exit code 2 with that one line and no traceback.
"""

from __future__ import annotations


class HelixAuditError(Exception):
    """Base of every error the library raises on purpose."""


class InputError(HelixAuditError):
    """An input file is unusable (missing, unreadable, not a capture at all)."""


class CaptureError(InputError):
    """A capture's structure is unusable from its first byte (bad magic, bad header)."""


class RulesError(HelixAuditError):
    """A rules file is invalid; the message names file, line and key."""


class SiteError(HelixAuditError):
    """The site profile is invalid; the message names file, line and key."""


class UsageError(HelixAuditError):
    """Options that do not go together."""
