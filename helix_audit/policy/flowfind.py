"""Findings from the classified flow table: unexpected destinations, inbound connections to
sandboxes, blocked required endpoints, DNS to unlisted resolvers. Rows are grouped with one
vectorised pandas group-by (one Python step per group, never per flow; a group is row positions,
:class:`.flowrows.FlowRows`, never a DataFrame slice); :mod:`.findings` merges and builds them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..model import Severity
from .evidence import isna
from .findings import Draft
from .flowrows import Columns, FlowRows, group_positions, value_counts

if TYPE_CHECKING:
    from .outcome import FlowNotes

LABEL = {"control_plane": "Control plane", "sandbox": "Sandbox", "other": "Host"}
_NAME_SOURCE = {
    "sni": "TLS SNI",
    "http_host": "HTTP Host",
    "connect": "proxy CONNECT",
    "websocket": "WebSocket Host",
    "dns_answer": "DNS answer",
}
_DEST_KEYS = ["orig_component", "dest", "target_port", "transport", "state", "category", "rule"]


def who(part: FlowRows, limit: int = 3) -> str:
    """The originators of ``part``: ``10.0.1.5, 10.0.1.6 (+3 more)``."""
    uniq = sorted({str(a) for a in part.values("orig_h")})
    more = f" (+{len(uniq) - limit} more)" if len(uniq) > limit else ""
    return ", ".join(uniq[:limit]) + more


def where(row: Mapping[str, Any]) -> str:
    """``evil.example (203.0.113.9, name from TLS SNI)`` or the bare address with why it has no name."""
    via = f" via proxy {row['resp_h']}:{int(row['resp_p'])}" if row["proxied"] else ""
    if isinstance(row["hostname"], str):
        addr = "" if row["proxied"] else f"{row['resp_h']}, "
        source = _NAME_SOURCE.get(row["name_source"], row["name_source"])
        return f"{row['hostname']} ({addr}name from {source}){via}"
    return f"{row['resp_h']} (no name seen: no DNS answer, SNI or Host){via}"


def _groups(cols: Columns, mask: np.ndarray, keys: list[str]) -> list[tuple[Mapping[str, Any], FlowRows]]:
    """(first row, rows) per group of the masked rows, in ``groupby(keys, sort=True)`` order."""
    out: list[tuple[Mapping[str, Any], FlowRows]] = []
    for pos in group_positions(cols, keys, mask):
        rows = FlowRows(cols, pos)
        out.append((rows.first(), rows))
    return out


def destination_drafts(
    cols: Columns, mask: np.ndarray, severity: dict[tuple[str, str, str], Severity], notes: FlowNotes
) -> list[Draft]:
    out = []
    for first, part in _groups(cols, mask, _DEST_KEYS):
        comp, state, category = first["orig_component"], first["state"], first["category"]
        verb = "connected to" if state == "established" else "tried to connect to"
        tail = "" if state == "established" else f" ({len(part)} flow(s), none established: {_states(part)})"
        msg = (
            f"{LABEL[comp]} {who(part)} {verb} {where(first)} on "
            f"{first['transport']}/{int(first['target_port'])}{tail}; no enabled rule allows it."
        )
        if isinstance(first["explanation"], str) and first["explanation"]:
            msg += f" Why: {first['explanation']}."
        sev = Severity.INFO if comp == "other" else severity[(category, state, comp)]
        failed = first.get("fail_how")
        how = failed if state != "established" and isinstance(failed, str) else None
        if how is not None:
            msg += f" It failed: {_how_text(first, part, how, notes)}."
        out.append(_draft("unexpected_destination", sev, first, part, msg, state=state, how=how))
    return out


_INBOUND_KEYS = ["resp_h", "resp_p", "transport", "state"]
#: what the draft of a one-flow inbound group reads of its flow
_INBOUND_ONE: tuple[str, ...] = ("state", "confidence", "orig_h", "orig_p", "resp_h", "resp_p")
_INBOUND_ONE += ("transport", "explanation", "conn_state", "rule")
_NEVER_ACCEPTS = (
    "Helix sandboxes never accept inbound connections (all channels are sandbox-initiated WebSockets)."
)


def inbound_drafts(cols: Columns, mask: np.ndarray) -> list[Draft]:
    """One draft per group; the one-flow groups (a scan's probes: thousands) read their flows'
    values in bulk (:func:`_inbound_one`), the others row by row."""
    groups = group_positions(cols, _INBOUND_KEYS, mask)
    at = np.asarray([pos[0] for pos in groups if pos.shape[0] == 1], dtype=np.int64)
    ones = iter(zip(*(cols(name)[at].tolist() for name in _INBOUND_ONE), strict=True))
    out = []
    for pos in groups:
        rows = FlowRows(cols, pos)
        out.append(_inbound_one(next(ones), rows) if pos.shape[0] == 1 else _inbound(rows.first(), rows))
    return out


def _inbound_text(
    accepted: bool, low: bool, src: str, n: int, first: Mapping[str, Any], states: Callable[[], str]
) -> tuple[Severity, str]:
    """Severity and message of an inbound group: ``src`` (who) opened ``n`` connections like
    ``first``; ``states`` says how they ended, asked only when the sandbox did not accept."""
    sev = Severity.CRITICAL if accepted else Severity.HIGH
    if low:
        sev = Severity.HIGH if accepted else Severity.MEDIUM
    outcome = "the sandbox accepted it" if accepted else f"not accepted ({states()})"
    msg = (
        f"{src} opened {n} connection(s) to sandbox {first['resp_h']} on "
        f"{first['transport']}/{int(first['resp_p'])}: {outcome}. {_NEVER_ACCEPTS}"
    )
    if low:
        msg += " Direction inferred without a SYN (low confidence)."
    expl = first["explanation"]
    if isinstance(expl, str) and expl:
        msg += f" Why: {expl}."
    return sev, msg


def _inbound(first: Mapping[str, Any], part: FlowRows) -> Draft:
    accepted = first["state"] == "accepted"
    low = all(c == "low" for c in part.values("confidence"))
    sev, msg = _inbound_text(accepted, low, who(part), len(part), first, lambda: _states(part))
    draft = _draft("inbound_to_sandbox", sev, first, part, msg, state=first["state"])
    draft.component, draft.dst, draft.hostname = "sandbox", str(first["resp_h"]), None
    draft.dst_port = int(first["resp_p"])
    return draft


def _inbound_one(values: tuple[Any, ...], part: FlowRows) -> Draft:
    """:func:`_inbound` of a one-flow group from its values (:data:`_INBOUND_ONE`), same draft."""
    state, confidence, orig_h, orig_p, resp_h, resp_p, transport, explanation, conn_state, rule = values
    src = str(orig_h)
    first = {"resp_h": resp_h, "transport": transport, "resp_p": resp_p, "explanation": explanation}
    states = functools.partial(_state_one, conn_state)
    sev, msg = _inbound_text(state == "accepted", confidence == "low", src, 1, first, states)
    expl = explanation if isinstance(explanation, str) and explanation else None
    return Draft(
        kind="inbound_to_sandbox",
        severity=sev,
        component="sandbox",
        dst=str(resp_h),
        dst_port=int(resp_p),
        transport=str(transport),
        hostname=None,
        message=msg,
        sources=[src],
        src_port=int(orig_p),
        rule=rule if isinstance(rule, str) else None,
        explanation=expl,
        rows=part,
        state=state,
    )


def blocked_drafts(
    cols: Columns, mask: np.ndarray, purposes: dict[str, str], core: set[str], notes: FlowNotes
) -> list[Draft]:
    """``mask``: the blocked flows (allowed, and failed: ``fail_how`` says how)."""
    out = []
    keys = ["orig_component", "dest", "target_port", "transport", "fail_how", "rule"]
    for first, part in _groups(cols, mask, keys):
        recovered = bool(part.col("recovered").all())
        sev = Severity.MEDIUM if first["rule"] in core else Severity.LOW
        msg = (
            f"{LABEL[first['orig_component']]} {who(part)} could not reach {where(first)} on "
            f"{first['transport']}/{int(first['target_port'])}, allowed by rule {first['rule']} "
            f"({purposes.get(first['rule'], '')}): {_how_text(first, part, first['fail_how'], notes)}."
        )
        if recovered:
            sev = Severity.LOW
            msg += " A later connection from the same host to the same endpoint succeeded."
        out.append(_draft("blocked", sev, first, part, msg, how=first["fail_how"]))
    return out


def resolver_drafts(cols: Columns, mask: np.ndarray, listed: tuple[str, ...]) -> list[Draft]:
    out = []
    for first, part in _groups(cols, mask, ["orig_component", "resp_h", "resp_p", "transport"]):
        comp = first["orig_component"]
        if listed:
            why, sev = f"not among the site's dns_servers ({', '.join(listed)})", Severity.MEDIUM
        else:
            why, sev = "a public resolver (no dns_servers in the site profile to compare with)", Severity.LOW
        msg = (
            f"{LABEL[comp]} {who(part)} sent DNS to {first['resp_h']} on "
            f"{first['transport']}/{int(first['resp_p'])} ({len(part)} flow(s)), {why}."
        )
        if isinstance(first["explanation"], str) and first["explanation"]:
            msg += f" Why: {first['explanation']}."
        draft = _draft(
            "dns_to_unlisted_resolver", Severity.INFO if comp == "other" else sev, first, part, msg
        )
        draft.hostname, draft.dst_port = None, int(first["resp_p"])
        out.append(draft)
    return out


def _draft(kind: str, sev: Severity, first: Mapping[str, Any], part: FlowRows, msg: str, **kw: Any) -> Draft:
    rule = first["rule"] if isinstance(first["rule"], str) else None
    expl = first["explanation"] if isinstance(first["explanation"], str) and first["explanation"] else None
    return Draft(
        kind=kind,
        severity=sev,
        component=str(first["orig_component"]),
        dst=str(first["resp_h"]),
        dst_port=int(first["target_port"]),
        transport=str(first["transport"]),
        hostname=first["hostname"] if isinstance(first["hostname"], str) else None,
        message=msg,
        sources=[str(a) for a in dict.fromkeys(part.values("orig_h"))],
        src_port=int(first["orig_p"]) if len(part) == 1 else None,
        rule=rule,
        explanation=expl,
        rows=part,
        **kw,
    )


def _states(part: FlowRows) -> str:
    if len(part) == 1:
        return _state_one(part.values("conn_state")[0])
    states = part.col("conn_state").astype(object)
    states = np.where(pd.isna(states), "-", states)
    return ", ".join(f"{state} x{n}" for state, n in value_counts(states))


def _state_one(state: object) -> str:
    return f"{'-' if isna(state) else state} x1"


def _how_text(first: Mapping[str, Any], part: FlowRows, how: str, notes: FlowNotes) -> str:
    """``notes``: the first flow's TLS alert or CONNECT status, when that is how it failed (kept
    per flow id, not as two all-but-empty columns of the table)."""
    span = float(np.max(part.col("last_ts")) - np.min(part.col("first_ts")))
    src, dst = who(part), first["resp_h"]
    if how == "no_answer":
        syns = int(part.col("syn").sum())
        return f"SYN sent {syns} times over {span:.0f} s with no reply: dropped between {src} and {dst}"
    if how == "reset":
        if (part.col("conn_state") == "REJ").all():
            return f"the SYN was answered with a TCP reset: refused by {dst} or a firewall in between"
        return (
            "the responder reset the connection after the client's first bytes and before any reply: "
            "a filtering middlebox (TLS/SNI inspection) is likely"
        )
    if how == "icmp_unreachable":
        return f"ICMP {first['icmp_error']} from {first['icmp_from']}: a router or firewall rejected it"
    if how == "tls_alert":
        alert = notes.tls_alert[int(first["flow_id"])]
        return f"the TLS handshake ended with a fatal alert ({alert}) from {dst}"
    if how == "proxy_denied":
        status = int(notes.connect_status[int(first["flow_id"])])
        return f"proxy {dst}:{int(first['resp_p'])} refused the CONNECT with HTTP {status}"
    return str(how)
