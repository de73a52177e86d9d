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
from ..names import clean_name
from .evidence import MAX_FRAMES
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
    members: dict[tuple[object, ...], list[tuple[WebSocketUpgrade, int | None, str]]] = {}
    path_ok: dict[str, bool] = {}  # paths repeat: match each distinct one once
    to_cp: dict[tuple[object, ...], bool] = {}  # and so do destinations
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
        path = path_only(obs.path)
        comp = components.get(obs.src, "other")
        ok = path_ok.get(path)
        if ok is None:
            ok = path_ok[path] = any(fnmatchcase(path, p) for p in allowed)
        id_parts: tuple[str, ...]
        if not ok:
            kind, id_parts = "unexpected_websocket_path", (path,)
        elif fid not in tls_flows and obs.src != obs.dst:
            kind, id_parts = "plaintext_control_channel", ()
        else:
            continue
        key = key_of(kind, comp, clean_name(obs.host), obs.dst, obs.dport, "tcp", id_parts=id_parts)
        have = out.get(key)
        if have is None:
            draft = out[key] = (
                _path_draft(obs, fid, path, comp, paths)
                if id_parts
                else _plaintext_draft(obs, fid, path, comp)
            )
            members[key] = [(obs, fid, path)]
        else:
            _merge(have, obs, path)
            members[key].append((obs, fid, path))
    for key, draft in out.items():
        draft.evidence = _merged_evidence(members[key])
    return list(out.values())


def _merged_evidence(upgrades: list[tuple[WebSocketUpgrade, int | None, str]]) -> tuple[Evidence, ...]:
    """:func:`.evidence.merge_evidence` of the upgrades' :func:`_evidence`, built from the
    upgrades directly (one Evidence per file, not one per upgrade merged later)."""
    by_file: dict[str, list[tuple[WebSocketUpgrade, int | None, str]]] = {}
    for item in upgrades:
        by_file.setdefault(item[0].file, []).append(item)
    out = []
    for file, group in sorted(by_file.items()):
        frames = {obs.frame for obs, _, _ in group}
        frames.update(obs.response_frame for obs, _, _ in group if obs.response_frame)
        filters = dict.fromkeys(f'http.request.uri contains "{path}"' for _, _, path in group)
        out.append(
            Evidence(
                file,
                tuple(sorted(frames))[:MAX_FRAMES],
                min(obs.ts for obs, _, _ in group),
                max(obs.ts for obs, _, _ in group),
                tuple(sorted({fid for _, fid, _ in group if fid is not None})),
                " || ".join(filters),
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


def _evidence(obs: WebSocketUpgrade, fid: int | None, path: str) -> tuple[Evidence, ...]:
    frames = tuple(sorted({obs.frame, *([obs.response_frame] if obs.response_frame else [])}))
    filt = f'http.request.uri contains "{path}"'
    return (Evidence(obs.file, frames, obs.ts, obs.ts, (fid,) if fid is not None else (), filt),)


def _draft(
    kind: str,
    sev: Severity,
    obs: WebSocketUpgrade,
    fid: int | None,
    comp: str,
    msg: str,
    path: str,
    explanation: str | None = None,
) -> Draft:
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
        evidence=_evidence(obs, fid, path),
        extra={"path": path, "id_parts": (path,)},
    )


def _path_draft(obs: WebSocketUpgrade, fid: int | None, path: str, comp: str, known: list) -> Draft:
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
    return _draft("unexpected_websocket_path", sev, obs, fid, comp, msg, path, explanation)


def _plaintext_draft(obs: WebSocketUpgrade, fid: int | None, path: str, comp: str) -> Draft:
    msg = (
        f"{LABEL.get(comp, 'Host')} {obs.src} opened the {path} channel to {obs.dst}:{obs.dport} as plain "
        "ws:// (no TLS on this connection): its traffic crosses the network unencrypted. Use wss:// "
        "(an https:// HELIX_API_URL) unless both ends share the host."
    )
    # info: the page allows 8080 and co-located installs use http://api:8080 (upstream notes), so
    # plain ws:// is compliant; it is still worth knowing where it crosses a network.
    draft = _draft("plaintext_control_channel", Severity.INFO, obs, fid, comp, msg, path)
    draft.extra = {"paths": [path]}
    return draft
