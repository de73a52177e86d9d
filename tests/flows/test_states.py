"""conn_state, history, handshake and originator for hand-built TCP/UDP packet sequences."""

from __future__ import annotations

import pytest

from helix_audit.flows.table import FlowTable

from .helpers import columns, tcp, udp

C, S = "10.0.0.9", "10.0.0.2"  # client deliberately the higher address: A/B order != orig/resp


def c2s(fl: str, **kw: object) -> dict:
    return tcp(C, 40000, S, 443, fl, **kw)


def s2c(fl: str, **kw: object) -> dict:
    return tcp(S, 443, C, 40000, fl, **kw)


HANDSHAKE = [c2s("S", seq=100), s2c("SA", seq=900), c2s("A")]
DATA = [c2s("PA", pay=50), s2c("PA", pay=500)]

CASES = {
    "S0": ([c2s("S"), c2s("S")], "S", "no_answer"),
    "REJ": ([c2s("S"), s2c("RA")], "Sr", "rejected"),
    "S1": (HANDSHAKE + DATA, "ShADd", "completed"),
    "SF": (HANDSHAKE + DATA + [c2s("FA"), s2c("FA"), c2s("A")], "ShADdFf", "completed"),
    "S2": (HANDSHAKE + DATA + [c2s("FA")], "ShADdF", "completed"),
    "S3": (HANDSHAKE + DATA + [s2c("FA")], "ShADdf", "completed"),
    "RSTO": (HANDSHAKE + DATA + [c2s("R")], "ShADdR", "completed"),
    "RSTR": (HANDSHAKE + DATA + [s2c("R")], "ShADdr", "completed"),
    "RSTOS0": ([c2s("S"), c2s("R")], "SR", "no_answer"),
    "RSTRH": ([s2c("SA"), s2c("R")], "hr", "synack_only"),
    "SH": ([c2s("S"), c2s("F")], "SF", "no_answer"),
    "SHR": ([s2c("SA"), s2c("FA")], "hf", "synack_only"),
    "OTH": ([c2s("PA", pay=10), s2c("PA", pay=10)], "Dd", "midstream"),
}


def finish(packets: list[dict]) -> dict:
    table = FlowTable()
    table.add(columns(packets))
    frame, _ = table.finish()
    assert len(frame) == 1
    return frame.iloc[0].to_dict()


@pytest.mark.parametrize("state", sorted(CASES))
def test_conn_state_history_handshake(state: str) -> None:
    packets, history, handshake = CASES[state]
    row = finish(packets)
    assert (row["conn_state"], row["history"], row["handshake"]) == (state, history, handshake)
    assert (row["orig_h"], row["orig_p"], row["resp_h"], row["resp_p"]) == (C, 40000, S, 443)


def test_syn_sender_is_originator_even_on_high_port() -> None:
    row = finish([tcp(S, 443, C, 40000, "S"), tcp(C, 40000, S, 443, "SA")])
    assert (row["orig_h"], row["orig_p"], row["initiator"], row["confidence"]) == (S, 443, "syn", "high")


def test_midstream_uses_port_heuristic() -> None:
    row = finish([s2c("PA", pay=10), c2s("A")])
    assert (row["orig_h"], row["resp_p"], row["initiator"], row["confidence"]) == (
        C,
        443,
        "port_heuristic",
        "low",
    )


def test_counts_are_oriented() -> None:
    row = finish(HANDSHAKE + DATA + [c2s("FA"), s2c("RA"), s2c("R")])
    assert (row["orig_pkts"], row["resp_pkts"], row["orig_bytes"], row["resp_bytes"]) == (4, 4, 50, 500)
    assert (row["syn"], row["synack"], row["orig_fin"], row["resp_rst"]) == (1, 1, 1, 2)
    assert row["key_frames"] == "1,2,4,5,6,7"


def test_udp_states_and_first_packet_originator() -> None:
    both = finish([udp(C, 5353, S, 6000), udp(S, 6000, C, 5353)])
    assert (both["conn_state"], both["orig_h"], both["initiator"]) == ("SF", C, "first_packet")
    one = finish([udp(C, 40000, S, 53), udp(C, 40000, S, 53)])
    assert (one["conn_state"], one["history"], one["udp_stream"], one["orig_pkts"]) == ("S0", "D", 0, 2)


def test_non_ip_rows_are_counted_not_flows() -> None:
    table = FlowTable()
    flows = table.add(
        columns([{"ethertype": 0x0806}, c2s("S"), {"ethertype": 0x88CC}, {"ethertype": 0x0806}])
    )
    assert flows.flow_id.tolist()[0] == -1 and flows.flow_id[1] >= 0
    summary = table.non_flow_summary()
    assert dict(zip(summary.ethertype, summary.packets, strict=True)) == {0x0806: 2, 0x88CC: 1}
