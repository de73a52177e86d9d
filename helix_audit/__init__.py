"""helix-audit: packet-capture compliance auditor for Helix deployments.

``audit(paths, site=..., rules=...)`` returns an :class:`~helix_audit.model.AuditResult`;
``scan(paths)`` runs only the packet stages (flows, observations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import audit, scan


def __getattr__(name: str) -> Any:
    # Lazy, so `helix-audit --help` and `rules` commands do not import numpy/pandas/numba.
    if name in ("audit", "scan"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)


__all__ = ["__version__", "audit", "scan"]
