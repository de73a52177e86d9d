"""Zeek's view of a flow: endpoint TCP states, ``conn_state`` and ``history``.

Zeek (base/protocols/conn/main.zeek, ``conn_state``) derives the state from each endpoint's final TCP
state (src/packet_analysis/protocol/tcp: INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED,
CLOSED, RESET). We replay Zeek's endpoint state machine over the flow's *first occurrences* of each
event per direction (S H A D F R, the same events Zeek's history records once each), in capture order.
Repeats of an event do not move Zeek's endpoint states, so the replay gives the same final states
while every input stays a mergeable aggregate.
"""

from __future__ import annotations

import re

import numpy as np
from numba import njit

from .orders import NONE
from .state import EV_FIRST, K_ACK, K_DATA, K_FIN, K_RST, K_SYN, K_SYNACK, NKIND

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
HISTORY_LETTERS = "SHADFR"  # per kind; upper case = originator
_RSTOS0 = re.compile(r"^\^?S[^HAFGIQ]*R.*")


@njit(cache=True)
def _step(st, me, is_orig, kind):
    """One packet of ``kind`` sent by endpoint ``me`` (0 orig, 1 resp); updates ``st`` in place."""
    peer = 1 - me
    syn = kind == K_SYN or kind == K_SYNACK  # noqa: SIM109 (numba: plain comparisons)
    ack = kind != K_SYN
    fin = kind == K_FIN
    rst = kind == K_RST
    s = st[me]
    if s == INACTIVE:
        if syn:
            if is_orig:
                st[me] = SYN_ACK_SENT if ack else SYN_SENT
            else:
                if st[peer] == SYN_SENT or (not ack and st[peer] == SYN_ACK_SENT):
                    st[peer] = ESTABLISHED
                st[me] = ESTABLISHED
        if fin:
            st[me] = CLOSED
        if rst:
            st[me] = RESET
        elif st[me] == INACTIVE and not (not is_orig and kind == K_ACK and st[peer] == SYN_SENT):
            st[me] = PARTIAL
    elif s == SYN_SENT or s == SYN_ACK_SENT:  # noqa: SIM109
        if fin:
            st[me] = CLOSED
        if rst:
            st[me] = RESET
    elif s == ESTABLISHED or s == PARTIAL:  # noqa: SIM109
        if syn and s == PARTIAL and st[peer] == INACTIVE and not ack:
            st[me] = SYN_SENT
        if fin:
            st[me] = CLOSED
        if rst:
            st[me] = RESET
    elif s == CLOSED and rst and st[peer] != CLOSED:
        st[me] = RESET


@njit(cache=True)
def replay(ev, orig_dir, is_tcp, out_state, out_hist):
    """Per flow: final endpoint states (orig, resp) and the history as 4-bit letter codes (1..12).

    ``out_hist`` packs letters first-to-last, low bits first; code = 1 + kind + 6 * (not orig).
    """
    n = ev.shape[0]
    orders = np.empty(2 * NKIND, dtype=np.int64)
    slots = np.empty(2 * NKIND, dtype=np.int64)
    st = np.zeros(2, dtype=np.int64)
    for f in range(n):
        m = 0
        for k in range(2 * NKIND):
            if ev[f, k] != NONE:
                orders[m] = ev[f, k]
                slots[m] = k
                m += 1
        for i in range(1, m):  # insertion sort by (order, slot)
            j = i
            while j > 0 and (
                orders[j - 1] > orders[j] or (orders[j - 1] == orders[j] and slots[j - 1] > slots[j])
            ):
                orders[j - 1], orders[j] = orders[j], orders[j - 1]
                slots[j - 1], slots[j] = slots[j], slots[j - 1]
                j -= 1
        st[0] = INACTIVE
        st[1] = INACTIVE
        h = 0
        for i in range(m):
            kind, d = slots[i] >> 1, slots[i] & 1
            me = 0 if d == orig_dir[f] else 1
            if is_tcp[f]:
                _step(st, me, me == 0, kind)
            h |= (1 + kind + NKIND * me) << (4 * i)
        out_state[f, 0] = st[0]
        out_state[f, 1] = st[1]
        out_hist[f] = h


def history_text(code: int, tcp: bool) -> str:
    """Letters of a packed history code (UDP and others keep only D/d, as Zeek's do)."""
    out = []
    while code:
        c = (code & 0xF) - 1
        kind, resp = c % NKIND, c >= NKIND
        if tcp or kind == K_DATA:
            letter = HISTORY_LETTERS[kind]
            out.append(letter.lower() if resp else letter)
        code >>= 4
    return "".join(out)


def conn_state_tcp(os_: int, rs: int, sizes_zero: bool, history: str) -> str:
    """Zeek's ``conn_state`` for TCP from the two final endpoint states."""
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and sizes_zero):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.match(history) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


def conn_state_udp(orig_pkts: int, resp_pkts: int) -> str:
    if orig_pkts:
        return "SF" if resp_pkts else "S0"
    return "SHR" if resp_pkts else "OTH"


EVENT_COLUMNS = {"syn": K_SYN, "synack": K_SYNACK, "ack": K_ACK, "data": K_DATA, "fin": K_FIN, "rst": K_RST}
FIRST_COLUMN = EV_FIRST
