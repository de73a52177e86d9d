"""The flow stage's contract: a table of conversations, one row per flow.

``FlowTable.add(cols)`` folds one decoded batch into running, *mergeable* per-flow aggregates
(counts add, first/last take min/max) and returns per-packet flow ids and directions, so the
protocols stage can group payloads into streams. ``FlowTable.merge(other)`` folds another table's
aggregates in (parallel and distributed runs); ``FlowTable.finish()`` derives the final columns
(initiator, conn_state, history ...) and returns the DataFrame below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Columns of the finished flow DataFrame, in order. One row per flow. Types: ``category`` is a
#: pandas Categorical of str (categories: the values used, ascending; no missing values) for the
#: columns of few distinct texts: a byte a flow where an object column took 8. ``int32`` columns
#: (ports, counters of SYN/FIN/RST packets and ICMP errors, frame numbers) stay int64 if a value
#: does not fit (widen before adding or subtracting them across flows).
#: ``textblob``: str values held in one buffer (:class:`.blob.TextBlobArray`; ``to_numpy()``
#: gives the object array of strs).
FLOW_COLUMNS: dict[str, str] = {
    "flow_id": "int64: stable id, 0.. in order of each flow's first packet (file order, then frame)",
    "transport": "category: tcp | udp | icmp | icmp6 | ip-<proto number>",
    "orig_h": "str: originator address (SYN sender; see initiator)",
    "orig_p": "int32: originator port (ICMP: type)",
    "resp_h": "str: responder address",
    "resp_p": "int32: responder port (ICMP: code)",
    "initiator": "category: syn | synack | first_packet | port_heuristic - how the originator was chosen "
    "(flows known only from an ICMP error: first_packet = the quoted packet's sender)",
    "confidence": "category: high (SYN seen, or SYN-ACK) | low (inferred)",
    "first_ts": "float64: first packet, seconds since epoch",
    "last_ts": "float64: last packet",
    "duration": "float64: last_ts - first_ts",
    "orig_pkts": "int64",
    "resp_pkts": "int64",
    "orig_ip_bytes": "int64: IP bytes sent by originator (as headers declare)",
    "resp_ip_bytes": "int64",
    "orig_bytes": "int64: L4 payload bytes sent by originator",
    "resp_bytes": "int64",
    "syn": "int32: SYNs (without ACK) from the originator, retransmissions included (one flow per "
    "connection: a pure SYN with a new ISN after FIN both ways or a RST starts a new flow)",
    "synack": "int32: SYN-ACKs from the responder",
    "orig_fin": "int32",
    "resp_fin": "int32",
    "orig_rst": "int32",
    "resp_rst": "int32",
    "conn_state": "category: Zeek conn_state (S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH)",
    "history": "category: Zeek-style history letters (ShADadFfRr, upper case = originator), in order",
    "handshake": "category: completed (SYN, SYN-ACK, then an originator ACK) | synack_only (SYN-ACK but no "
    "completing ACK; syn == 0 tells a missed SYN) | rejected (SYN answered by RST) | no_answer (SYN only) "
    "| midstream (no SYN/SYN-ACK) | none (UDP/ICMP)",
    "icmp_errors": "int32: ICMP/ICMPv6 errors that quote this flow",
    "icmp_error": "str|None: first such error, e.g. 'unreachable/3' (type name/numeric code; "
    "flows.icmp.code_name gives 'port', 'admin_prohibited' ...)",
    "icmp_from": "str|None: who sent the ICMP error (router or host address)",
    "icmp_frames": "category: frames of those errors, 'file:frame' comma separated ('' if none)",
    "file": "category: input file of the first packet",
    "files": "category: every input file holding packets of the flow, '|' separated",
    "first_frame": "int32: frame of the first packet in `file` (int64 if a frame number passes int32)",
    "last_frame": "int32: frame of the last packet (in the last file; int64 as first_frame)",
    "key_frames": "textblob: comma-separated frames worth opening (first SYN, SYN-ACK, payload, FIN, "
    "RST each way, ICMP errors; at most 12); frames in another file than `file` are written 'path:frame'",
    "tcp_stream": "Int32: tshark's tcp.stream index for the flow in `file` (NA for non-TCP and for "
    "flows known only from an ICMP error)",
    "udp_stream": "Int32: tshark's udp.stream index in `file` (NA for non-UDP)",
    "vlan": "int32: outermost VLAN id (0 none)",
    "encap": "category: tunnels peeled off, e.g. 'vxlan', 'vlan+gre', ''",
}


@dataclass(frozen=True, eq=False)
class PacketFlows:
    """Per-row result of ``FlowTable.add``: arrays of the batch's length.

    flow_id  int64  provisional-then-final id of the row's flow (-1: not part of a flow, e.g. ARP,
                    malformed, or an ICMP error, which is attached to the flow it quotes instead)
    from_a   bool   True when the row's src is the flow's endpoint A (the lower (addr, port) pair);
                    direction relative to the originator is known only at finish
    """

    flow_id: np.ndarray
    from_a: np.ndarray
