"""Findings from WebSocket upgrades to the control plane.

``unexpected_websocket_path``: an upgrade to the control plane on a path other than the channels
the page names (``/api/v1/revdial``, ``/api/v1/external-agents/sync``; plus the upstream paths when
the site enables that ruleset). Paths Helix is known to use are explained from the upstream notes.

``plaintext_control_channel``: a channel upgrade we could read on the wire, i.e. ``ws://`` without
TLS on that flow: screenshots, input and clipboard (RevDial) or chat and LLM responses (agent sync)
cross the network unencrypted. Upstream notes: co-located installs use ``http://api:8080``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

import pandas as pd

from ..model import Evidence, Observation, Severity, TlsClientHello, WebSocketUpgrade
from ..names import CleanNames, clean_name
from .evidence import MAX_FRAMES, new_evidence
from .findings import Draft, key_of
from .flowfind import LABEL
from .match import Matcher
from .observed import Observed, observed
from .roles import path_only


def websocket_drafts(
    named: pd.DataFrame,
    observations: Sequence[Observation] | Observed,
    matcher: Matcher,
    components: dict[str, str],
) -> list[Draft]:
    seen = observed(named, observations)
    upgrades: list[WebSocketUpgrade] = seen.of(WebSocketUpgrade)
    if not upgrades:
        return []
    tls_flows = set(seen.flow_ids(TlsClientHello))
    fids = seen.flow_ids(WebSocketUpgrade)
    known = [f for f in fids if f is not None]
    rows = seen.rows(known).tolist()
    where = dict(zip(known, rows, strict=True))
    flow_names = named["names"].to_numpy(dtype=object)
    flow_resp = named["resp_component"].to_numpy(dtype=object)
    allowed = {p for r in matcher.enabled for p in r.websocket_paths}
    paths = [p for p in matcher.ruleset.paths if p.websocket]
    enabled_sets = set(matcher.ruleset.default_on) | set(matcher.site.rulesets if matcher.site else ())
    allowed |= {p.path for p in paths if p.ruleset in enabled_sets}
    out: dict[tuple[object, ...], Draft] = {}  # by group key (:func:`.findings.group`)
    members: dict[tuple[object, ...], dict[str, _Seen]] = {}  # per group, per file: its upgrades
    path_of: dict[str, tuple[str, bool]] = {}  # paths repeat: each distinct one cut and matched once
    to_cp: dict[tuple[object, ...], bool] = {}  # and so do destinations
    hosts = CleanNames()
    for obs, fid in zip(upgrades, fids, strict=True):
        pos = where.get(fid, -1) if fid is not None else -1
        if pos >= 0:
            dest: tuple[object, ...] = (flow_names[pos], obs.dst, str(flow_resp[pos]))
        else:
            dest = ((), obs.dst, components.get(obs.dst, "other"))
        cp = to_cp.get(dest)
        if cp is None:
            cp = to_cp[dest] = matcher.is_control_plane(tuple(dest[0]), obs.dst, dest[2])  # type: ignore[arg-type]
        if not cp:
            continue
        found = path_of.get(obs.path)
        if found is None:
            cut = path_only(obs.path)
            found = path_of[obs.path] = (cut, any(fnmatchcase(cut, p) for p in allowed))
        path, ok = found
        comp = components.get(obs.src, "other")
        id_parts: tuple[str, ...]
        if not ok:
            kind, id_parts = "unexpected_websocket_path", (path,)
        elif fid not in tls_flows and obs.src != obs.dst:
            kind, id_parts = "plaintext_control_channel", ()
        else:
            continue
        key = key_of(kind, comp, hosts[obs.host], obs.dst, obs.dport, "tcp", id_parts=id_parts)
        have = out.get(key)
        if have is None:
            draft = out[key] = (
                _path_draft(obs, path, comp, paths) if id_parts else _plaintext_draft(obs, path, comp)
            )
            files = members[key] = {}
        else:
            _merge(have, obs, path)
            files = members[key]
        seen_here = files.get(obs.file)  # what the evidence wants of it, noted now (no second pass)
        if seen_here is None:
            seen_here = files[obs.file] = _Seen()
        seen_here.add(obs, fid, path)
    for key, draft in out.items():
        draft.evidence = _merged_evidence(members[key])
    return list(out.values())


class _Seen:
    """A group's upgrades in one file: their frames (and response frames), times, flow ids and
    paths (first seen first)."""

    __slots__ = ("frames", "times", "fids", "paths")

    def __init__(self) -> None:
        self.frames: set[int] = set()
        self.times: list[float] = []
        self.fids: set[int] = set()
        self.paths: dict[str, None] = {}

    def add(self, obs: WebSocketUpgrade, fid: int | None, path: str) -> None:
        self.frames.add(obs.frame)
        if obs.response_frame:
            self.frames.add(obs.response_frame)
        self.times.append(obs.ts)
        if fid is not None:
            self.fids.add(fid)
        self.paths[path] = None


def _merged_evidence(files: dict[str, _Seen]) -> tuple[Evidence, ...]:
    """:func:`.evidence.merge_evidence` of the evidence of each upgrade of a group (frame and
    response frame, time, flow, an ``http.request.uri`` filter of its path), built from what the
    upgrades left in ``files`` (one Evidence per file, not one per upgrade merged later)."""
    out = []
    for file, seen in sorted(files.items(), key=lambda item: item[0]):
        frames, times, fids, paths = seen.frames, seen.times, seen.fids, seen.paths
        out.append(
            new_evidence(
                file,
                tuple(sorted(frames))[:MAX_FRAMES],
                min(times),
                max(times),
                tuple(sorted(fids)),
                " || ".join(f'http.request.uri contains "{path}"' for path in paths),
            )
        )
    return tuple(out)


def _merge(have: Draft, obs: WebSocketUpgrade, path: str) -> None:
    """What :func:`.findings.group` does when it merges a later upgrade's draft into ``have``
    (same kind and key, so the same severity), without building that draft."""
    have.sources.append(obs.src)
    have.extra["count"] = have.extra.get("count", 1) + 1
    paths = have.extra.get("paths")
    if isinstance(paths, list) and path not in paths:  # already there: the union is the same list
        have.extra["paths"] = sorted(set(paths) | {path})


def _draft(
    kind: str,
    sev: Severity,
    obs: WebSocketUpgrade,
    comp: str,
    msg: str,
    path: str,
    explanation: str | None = None,
) -> Draft:
    """The group's draft, from its first upgrade (its evidence: the whole group's, set at the end)."""
    return Draft(
        kind=kind,
        severity=sev,
        component=comp,
        dst=obs.dst,
        dst_port=obs.dport,
        transport="tcp",
        hostname=clean_name(obs.host),
        message=msg,
        sources=[obs.src],
        src_port=obs.sport,
        explanation=explanation,
        extra={"path": path, "id_parts": (path,)},
    )


def _path_draft(obs: WebSocketUpgrade, path: str, comp: str, known: list) -> Draft:
    hit = next((p for p in known if fnmatchcase(path, p.path)), None)
    explanation = None
    sev = Severity.MEDIUM
    if hit is not None:
        old = "; seeing it suggests an old install" if hit.legacy else ""
        explanation = f"used by Helix (upstream notes: {hit.purpose}) but not on the published page{old}"
        sev = Severity.LOW if not hit.legacy else Severity.MEDIUM
    answer = {True: "accepted (101)", False: f"refused ({obs.status})", None: "answer not seen"}[obs.accepted]
    msg = (
        f"{LABEL.get(comp, 'Host')} {obs.src} opened a WebSocket to the control plane {obs.dst}:{obs.dport} "
        f"on {path}, {answer}; the page names only /api/v1/revdial and /api/v1/external-agents/sync."
    )
    if explanation:
        msg += f" Why: {explanation}."
    return _draft("unexpected_websocket_path", sev, obs, comp, msg, path, explanation)


def _plaintext_draft(obs: WebSocketUpgrade, path: str, comp: str) -> Draft:
    msg = (
        f"{LABEL.get(comp, 'Host')} {obs.src} opened the {path} channel to {obs.dst}:{obs.dport} as plain "
        "ws:// (no TLS on this connection): its traffic crosses the network unencrypted. Use wss:// "
        "(an https:// HELIX_API_URL) unless both ends share the host."
    )
    # info: the page allows 8080 and co-located installs use http://api:8080 (upstream notes), so
    # plain ws:// is compliant; it is still worth knowing where it crosses a network.
    draft = _draft("plaintext_control_channel", Severity.INFO, obs, comp, msg, path)
    draft.extra = {"paths": [path]}
    return draft
