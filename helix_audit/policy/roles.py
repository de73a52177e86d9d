"""Which address is the control plane and which a sandbox.

1. The site profile's addresses / CIDRs (``Role.source == "profile"``).
2. The profile's ``control_plane.names`` when it gives names but no addresses: a flow whose
   responder is named so (SNI, Host, DNS answer; proxied flows excluded, their responder is the
   proxy) makes that responder the control plane (``source == "profile"``, evidence says how).
3. Inferred from traffic (``source == "inferred"``): the side that opens a WebSocket to
   ``/api/v1/revdial`` or ``/api/v1/external-agents/sync`` is a sandbox, its peer (unless a proxy)
   the control plane. Roles already given by the profile win over inferred ones.
Everything else is ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from ..model import Observation, Role, WebSocketUpgrade
from .flowcodes import FlowCodes
from .observed import Observed, observed
from .site import SiteProfile

CHANNEL_PATHS = ("/api/v1/revdial", "/api/v1/external-agents/sync")
OTHER = "other"
_MAX_FRAMES = 20


@lru_cache(maxsize=1 << 12)  # paths repeat: each upgrade asks for its own
def path_only(path: str) -> str:
    """The path of a request target without query (absolute-form targets lose scheme and host)."""
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    return path.split("?", 1)[0].split("#", 1)[0] or "/"


def assign_roles(
    named: pd.DataFrame,
    observations: Sequence[Observation] | Observed,
    site: SiteProfile | None,
    codes: FlowCodes | None = None,
) -> list[Role]:
    """Roles for every address that has one; ``named`` is the output of :func:`names.attribute`
    (``codes``: its :class:`FlowCodes`, when already made)."""
    roles: dict[str, Role] = {}
    if site is not None:
        _from_profile(codes.hosts()[2] if codes is not None else _addresses(named).tolist(), site, roles)
        if site.control_plane_names and not site.control_plane_addresses:
            _from_names(named, site, roles)
    _inferred(observed(named, observations).of(WebSocketUpgrade), site, roles)
    return sorted(roles.values(), key=lambda r: (r.component, r.address))


def _addresses(named: pd.DataFrame) -> np.ndarray:
    return pd.unique(np.concatenate([named["orig_h"].to_numpy(), named["resp_h"].to_numpy()]))


def _from_profile(addresses: Sequence[object], site: SiteProfile, roles: dict[str, Role]) -> None:
    for addr, component in zip(addresses, site.components_of([str(a) for a in addresses]), strict=True):
        if component is not None:
            key = "control_plane.addresses" if component == "control_plane" else "sandboxes.addresses"
            roles[str(addr)] = Role(str(addr), component, "profile", f"site profile {key}")


def _from_names(named: pd.DataFrame, site: SiteProfile, roles: dict[str, Role]) -> None:
    wanted = set(site.control_plane_names)
    hits = named[named["hostname"].isin(wanted) & ~named["proxied"].astype(bool)]
    for addr, group in hits.groupby("resp_h", sort=True):
        if str(addr) in roles:
            continue
        first = group.sort_values("first_ts").iloc[0]
        evidence = (
            f"named {first['hostname']} ({first['name_source']}) in flow {int(first['flow_id'])}; "
            "site profile control_plane.names"
        )
        frames = tuple(int(f) for f in group["first_frame"].head(_MAX_FRAMES))
        roles[str(addr)] = Role(str(addr), "control_plane", "profile", evidence, frames)


def _inferred(upgrades: Sequence[WebSocketUpgrade], site: SiteProfile | None, roles: dict[str, Role]) -> None:
    found: dict[tuple[str, str], list[WebSocketUpgrade]] = {}
    proxy: dict[tuple[str, int], bool] = {}  # one profile lookup per distinct peer
    for obs in upgrades:
        if path_only(obs.path) in CHANNEL_PATHS:
            found.setdefault((obs.src, "sandbox"), []).append(obs)
            peer = (obs.dst, obs.dport)
            if site is not None and peer not in proxy:
                proxy[peer] = site.is_proxy(*peer)
            if site is None or not proxy[peer]:
                found.setdefault((obs.dst, "control_plane"), []).append(obs)
    for (addr, component), seen in sorted(found.items()):
        if addr in roles:
            continue
        first = seen[0]
        side = "opened" if component == "sandbox" else "accepted"
        evidence = (
            f"{side} WebSocket {path_only(first.path)} ({first.src}:{first.sport} -> "
            f"{first.dst}:{first.dport}, {first.file} frame {first.frame}); {len(seen)} upgrade(s)"
        )
        frames = tuple(o.frame for o in seen[:_MAX_FRAMES])
        roles[addr] = Role(addr, component, "inferred", evidence, frames)


def component_columns(named: pd.DataFrame, roles: Sequence[Role]) -> tuple[np.ndarray, np.ndarray]:
    """``orig_component`` and ``resp_component`` arrays (control_plane | sandbox | other), looked
    up per distinct address as classification does (:func:`host_components`)."""
    codes = FlowCodes(named)
    comps = host_components({r.address: r.component for r in roles}, codes)
    return codes.per_host(comps, "orig"), codes.per_host(comps, "resp")


def host_components(lookup: dict[str, str], codes: FlowCodes) -> np.ndarray:
    """The component of each of ``codes``' addresses, then :data:`OTHER` (missing address)."""
    found = [lookup.get(a, OTHER) if isinstance(a, str) else OTHER for a in codes.hosts()[2]]
    return np.array([*found, OTHER], dtype=object)
