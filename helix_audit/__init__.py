"""helix-audit: packet-capture compliance auditor for Helix deployments."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
