"""Realistic flow rows and observations for policy tests, shaped like the flows stage's output
(``flows.interface.FLOW_COLUMNS``) and the protocols stage's observations."""

from __future__ import annotations

from typing import Any

import pandas as pd

from helix_audit.flows.interface import FLOW_COLUMNS
from helix_audit.model import DnsAnswer, DnsQuery, DnsResponse, Evidence, Finding, Severity

FILE = "site.pcap"
T0 = 1_760_000_000.0

# Zeek-like outcomes: what the flows stage reports for each TCP ending.
_TCP = {
    "SF": dict(handshake="completed", history="ShADadFf", syn=1, synack=1, orig_fin=1, resp_fin=1),
    "S1": dict(handshake="completed", history="ShADad", syn=1, synack=1),
    "S0": dict(handshake="no_answer", history="S", syn=6, synack=0, resp_pkts=0, resp_bytes=0, orig_bytes=0),
    "REJ": dict(handshake="rejected", history="Sr", syn=1, synack=0, resp_rst=1, resp_bytes=0, orig_bytes=0),
    "RSTR": dict(handshake="completed", history="ShADr", syn=1, synack=1, resp_rst=1, resp_bytes=0),
}


class Capture:
    """Accumulates flows (with consecutive ids, frames and tcp.stream numbers) and observations."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.obs: list[Any] = []
        self.frame = 1
        self.tcp_stream = 0
        self.udp_stream = 0

    def flow(
        self,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        *,
        transport: str = "tcp",
        state: str = "SF",
        t: float = 0.0,
        duration: float = 1.0,
        **over: Any,
    ) -> int:
        fid = len(self.rows)
        row: dict[str, Any] = {
            "flow_id": fid,
            "transport": transport,
            "orig_h": src,
            "orig_p": sport,
            "resp_h": dst,
            "resp_p": dport,
            "initiator": "syn" if transport == "tcp" else "first_packet",
            "confidence": "high",
            "first_ts": T0 + t,
            "last_ts": T0 + t + duration,
            "duration": duration,
            "orig_pkts": 8,
            "resp_pkts": 8,
            "orig_ip_bytes": 1400,
            "resp_ip_bytes": 5000,
            "orig_bytes": 900,
            "resp_bytes": 4200,
            "syn": 0,
            "synack": 0,
            "orig_fin": 0,
            "resp_fin": 0,
            "orig_rst": 0,
            "resp_rst": 0,
            "conn_state": state if transport == "tcp" else ("SF" if state == "SF" else state),
            "history": "",
            "handshake": "none",
            "icmp_errors": 0,
            "icmp_error": None,
            "icmp_from": None,
            "icmp_frames": "",
            "file": FILE,
            "files": FILE,
            "first_frame": self.frame,
            "last_frame": self.frame + 15,
            "key_frames": f"{self.frame},{self.frame + 1},{self.frame + 3}",
            "tcp_stream": pd.NA,
            "udp_stream": pd.NA,
            "vlan": 0,
            "encap": "",
        }
        if transport == "tcp":
            row.update(_TCP[state])
            row["tcp_stream"] = self.tcp_stream
            self.tcp_stream += 1
        elif transport == "udp":
            row["udp_stream"] = self.udp_stream
            self.udp_stream += 1
            if state == "S0":
                row.update(resp_pkts=0, resp_bytes=0, resp_ip_bytes=0)
        row.update(over)
        self.frame += 16
        self.rows.append(row)
        return fid

    def add(self, cls: type, fid: int | None, *, t: float = 0.0, reply: bool = False, **fields: Any) -> Any:
        """An observation on flow ``fid`` (endpoints from the flow; ``reply`` = from the responder)."""
        row = self.rows[fid] if fid is not None else fields.pop("row")
        src, sport, dst, dport = row["orig_h"], row["orig_p"], row["resp_h"], row["resp_p"]
        if reply:
            src, sport, dst, dport = dst, dport, src, sport
        obs = cls(
            type=cls.__name__,
            frame=row["first_frame"] + (4 if reply else 3),
            ts=row["first_ts"] + t,
            file=FILE,
            src=src,
            sport=sport,
            dst=dst,
            dport=dport,
            transport=row["transport"],
            flow_id=fid,
            **fields,
        )
        self.obs.append(obs)
        return obs

    def lookup(
        self,
        client: str,
        resolver: str,
        name: str,
        *,
        t: float,
        qtype: str = "A",
        rcode: str | None = "NOERROR",
        answers: tuple[DnsAnswer, ...] = (),
        txid: int = 0x1234,
    ) -> int:
        """A DNS exchange on its own UDP flow; ``rcode=None`` = no response (timeout)."""
        fid = self.flow(
            client,
            40000 + len(self.rows),
            resolver,
            53,
            transport="udp",
            t=t,
            duration=0.02,
            state="SF" if rcode else "S0",
        )
        self.add(DnsQuery, fid, id=txid, qname=name, qtype=qtype, qtypes=(qtype,), qnames=(name,))
        if rcode is not None:
            self.add(
                DnsResponse,
                fid,
                t=0.02,
                reply=True,
                id=txid,
                qname=name,
                qtype=qtype,
                rcode=rcode,
                answers=answers,
            )
        return fid

    def resolve(
        self, client: str, resolver: str, name: str, address: str, *, t: float, cname: str | None = None
    ) -> int:
        rtype = "AAAA" if ":" in address else "A"
        answers: tuple[DnsAnswer, ...] = (DnsAnswer(name, rtype, 60, address),)
        if cname:
            answers = (DnsAnswer(name, "CNAME", 60, cname), DnsAnswer(cname, rtype, 60, address))
        return self.lookup(client, resolver, name, t=t, qtype=rtype, answers=answers)

    def frame_df(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=list(FLOW_COLUMNS))
        for col in ("tcp_stream", "udp_stream"):
            df[col] = df[col].astype("Int64")
        return df


def lookup_finding(
    src: str, hostname: str | None, evidence: tuple[Evidence, ...], sources: tuple[str, ...]
) -> Finding:
    """A blocked-lookup finding at resolver 10.0.0.53 (what DNS evidence is added to)."""
    return Finding(
        id="x",
        kind="blocked",
        severity=Severity.LOW,
        component="sandbox",
        src=src,
        src_port=None,
        dst="10.0.0.53",
        dst_port=53,
        transport="udp",
        hostname=hostname,
        message="m",
        evidence=evidence,
        sources=sources,
    )
