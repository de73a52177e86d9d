"""One tshark ``-T ek`` row (the fields of one frame) turned into observations.

tshark flattens repeated fields: a frame with two DNS messages or two pipelined HTTP requests gives
one list per field, in order. DNS messages are split again with the ``dns.count.*`` fields; resource
records are walked with ``dns.resp.type`` and each type's data list consumed in order (OPT records
carry no TTL). A list whose length differs from the message count is used only when there is one
message. Answer data is filled for A, AAAA, CNAME, PTR, NS and MX; other types get "".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dns.rcode
import dns.rdatatype

from ..model import (
    DnsAnswer,
    DnsQuery,
    DnsResponse,
    HttpConnect,
    HttpRequest,
    HttpResponse,
    Observation,
    TlsAlert,
    TlsClientHello,
    TlsServerHello,
    WebSocketUpgrade,
)
from ..protocols.tls import ALERT_DESCRIPTIONS, ALERT_LEVELS
from ..protocols.tlshello import EXT_ECH, EXT_ESNI, is_grease, version_text

FIELDS = (
    "frame.number", "frame.time_epoch", "frame.protocols",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
    "tcp.srcport", "tcp.dstport", "tcp.stream", "tcp.segment", "udp.srcport", "udp.dstport", "udp.stream",
    "dns.id", "dns.flags.response", "dns.flags.rcode", "dns.count.queries", "dns.count.answers",
    "dns.count.auth_rr", "dns.count.add_rr", "dns.qry.name", "dns.qry.type",
    "dns.resp.name", "dns.resp.type", "dns.resp.ttl",
    "dns.a", "dns.aaaa", "dns.cname", "dns.ptr.domain_name", "dns.ns", "dns.mx.mail_exchange",
    "tls.handshake.type", "tls.handshake.version", "tls.handshake.extensions.supported_version",
    "tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
    "tls.handshake.extension.type",
    "tls.alert_message.level", "tls.alert_message.desc",
    "http.request.method", "http.request.uri", "http.request.version", "http.host", "http.user_agent",
    "http.upgrade", "http.response.code", "http.response.phrase", "http.response.version", "http.request_in",
    "http2.headers.method", "http2.headers.path", "http2.headers.authority", "http2.headers.user_agent",
    "http2.header.name", "http2.header.value",
)  # fmt: skip
RR_DATA = {
    1: "dns.a",
    28: "dns.aaaa",
    5: "dns.cname",
    12: "dns.ptr.domain_name",
    2: "dns.ns",
    15: "dns.mx.mail_exchange",
}
OPT = 41
DNS_LAYERS = ("dns", "mdns", "llmnr")
TUNNEL_LAYERS = frozenset({"vxlan", "geneve", "teredo", "gre", "erspan", "gtp", "l2tp", "ipip", "socks"})
Stream = tuple[str, int] | None


class Row:
    """The fields of one frame: ``{"tcp_srcport": ["443"], ...}`` as tshark's ek output names them."""

    def __init__(self, layers: dict[str, list[str]]) -> None:
        self.layers = layers
        self.frame = int(self.first("frame.number") or 0)
        self.protocols = self.first("frame.protocols") or ""

    def all(self, name: str) -> list[str]:
        value = self.layers.get(name.replace(".", "_"), [])
        return value if isinstance(value, list) else [value]

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def last(self, name: str) -> str | None:
        values = self.all(name)
        return values[-1] if values else None

    def ints(self, name: str) -> list[int]:
        return [_int(v) for v in self.all(name)]


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text, 0) if text else default
    except ValueError:
        return default


def _nth(values: list[str], i: int, n: int) -> str | None:
    """Value ``i`` of a flattened field for ``n`` messages (see module docstring)."""
    if len(values) == n:
        return values[i]
    return values[0] if n == 1 and values else None


def _rindex(items: list[str], *names: str) -> int:
    return max((i for i, item in enumerate(items) if item in names), default=-1)


def _head(row: Row, protos: list[str], file: str) -> tuple[dict[str, Any], Stream] | None:
    """The common observation fields from the innermost IP and UDP/TCP headers."""
    ip_at = _rindex(protos, "ip", "ipv6")
    l4_at = _rindex(protos, "tcp", "udp")
    if ip_at < 0 or l4_at < ip_at:
        return None
    fam, l4 = protos[ip_at], protos[l4_at]
    segments = tuple(int(f) for f in row.all("tcp.segment")) if l4 == "tcp" else ()
    stream = row.last(f"{l4}.stream")
    head = {
        "frame": row.frame, "ts": float(row.first("frame.time_epoch") or 0.0), "file": file,
        "src": row.last(f"{fam}.src") or "", "sport": _int(row.last(f"{l4}.srcport")),
        "dst": row.last(f"{fam}.dst") or "", "dport": _int(row.last(f"{l4}.dstport")),
        "transport": l4, "flow_id": None, "frames": segments or (row.frame,),
    }  # fmt: skip
    return head, ((l4, int(stream)) if stream is not None else None)


def row_observations(row: Row, file: str) -> Iterator[tuple[Observation, Stream, int | None]]:
    """Every observation of one frame, each with its tshark stream and, for a response, its request frame."""
    protos = row.protocols.split(":")
    if "icmp" in protos or "icmpv6" in protos:
        return  # a packet quoted inside an ICMP error is not traffic of its own
    got = _head(row, protos, file)
    if got is None:
        return
    head, stream = got
    found: list[Observation] = []
    layer = next((p for p in reversed(protos) if p in DNS_LAYERS), None)
    if layer is not None and row.all("dns.flags.response"):
        found += _dns(row, head, layer)
    found += _tls(row, head, "quic" in protos)
    found += _http2(row, head)
    for obs in found:
        yield obs, stream, None
    if head["transport"] == "tcp":  # HTTP heads over UDP (SSDP) are not connections
        for obs, linked in _http(row, head):
            yield obs, stream, linked


# ------------------------------------------------------------------------------------------------------
# DNS
# ------------------------------------------------------------------------------------------------------


class _Records:
    """Resource records of a frame, consumed in wire order across its messages."""

    def __init__(self, row: Row) -> None:
        self.names = deque(row.all("dns.resp.name"))
        self.types = deque(row.ints("dns.resp.type"))
        self.ttls = deque(row.ints("dns.resp.ttl"))
        self.data = {t: deque(row.all(f)) for t, f in RR_DATA.items()}

    def take(self, count: int) -> list[DnsAnswer]:
        out = []
        for _ in range(count):
            if not self.types:
                break
            rtype = self.types.popleft()
            name = self.names.popleft() if self.names else ""
            ttl = self.ttls.popleft() if rtype != OPT and self.ttls else 0
            queue = self.data.get(rtype)
            out.append(DnsAnswer(name, dns.rdatatype.to_text(rtype), ttl, queue.popleft() if queue else ""))  # type: ignore[arg-type]
        return out


def _dns(row: Row, head: dict[str, Any], layer: str) -> list[Observation]:
    responses = row.ints("dns.flags.response")
    n = len(responses)
    ids, rcodes = row.all("dns.id"), row.all("dns.flags.rcode")
    qcounts, ancounts = row.ints("dns.count.queries"), row.ints("dns.count.answers")
    others = [
        a + b for a, b in zip(row.ints("dns.count.auth_rr"), row.ints("dns.count.add_rr"), strict=False)
    ]
    qnames, qtypes = row.all("dns.qry.name"), [dns.rdatatype.to_text(t) for t in row.ints("dns.qry.type")]  # type: ignore[arg-type]
    records, qpos = _Records(row), 0
    out: list[Observation] = []
    for i, response in enumerate(responses):
        q = qcounts[i] if i < len(qcounts) else (len(qnames) if n == 1 else 0)
        names, types = tuple(qnames[qpos : qpos + q]), tuple(qtypes[qpos : qpos + q])
        qpos += q
        common = {**head, "id": _int(_nth(ids, i, n)), "qname": names[0] if names else "",
                  "qtype": types[0] if types else "", "protocol": layer}  # fmt: skip
        answers = records.take(ancounts[i] if i < len(ancounts) else 0)
        records.take(others[i] if i < len(others) else 0)
        if response:
            rcode = dns.rcode.to_text(_int(_nth(rcodes, i, n)))  # type: ignore[arg-type]
            out.append(DnsResponse("dns_response", **common, rcode=rcode, answers=tuple(answers)))
        else:
            out.append(DnsQuery("dns_query", **common, qtypes=types, qnames=names))
    return out


# ------------------------------------------------------------------------------------------------------
# TLS (over TCP, or in a QUIC Initial)
# ------------------------------------------------------------------------------------------------------


def _offered_version(legacy: str | None, supported: list[str]) -> str:
    real = [v for v in (_int(s) for s in supported) if not is_grease(v)]
    return version_text(max(real) if real else _int(legacy))


def _tls(row: Row, head: dict[str, Any], quic: bool) -> list[Observation]:
    types = row.ints("tls.handshake.type")
    hellos, servers = types.count(1), types.count(2)
    legacy, supported = (
        row.all("tls.handshake.version"),
        row.all("tls.handshake.extensions.supported_version"),
    )
    snis, alpn = (
        row.all("tls.handshake.extensions_server_name"),
        tuple(row.all("tls.handshake.extensions_alpn_str")),
    )
    ech = any(t in (EXT_ECH, EXT_ESNI) for t in row.ints("tls.handshake.extension.type"))
    out: list[Observation] = []
    for i in range(hellos):
        offered = _offered_version(legacy[i] if i < len(legacy) else None, supported if hellos == 1 else [])
        sni, protos = _nth(snis, i, hellos), alpn if hellos == 1 else ()
        hello = TlsClientHello(
            "tls_client_hello", **head, sni=sni, alpn=protos, version=offered, ech=ech, quic=quic
        )
        out.append(hello)
    if servers and not hellos:
        sv = [s for s in supported if not is_grease(_int(s))]
        out.append(
            TlsServerHello(
                "tls_server_hello", **head, version=version_text(_int(sv[0] if sv else _nth(legacy, 0, 1)))
            )
        )
    levels, descs = row.ints("tls.alert_message.level"), row.ints("tls.alert_message.desc")
    for level, desc in zip(levels, descs, strict=False):
        out.append(TlsAlert("tls_alert", **head, level=ALERT_LEVELS.get(level, str(level)),
                            description=ALERT_DESCRIPTIONS.get(desc, str(desc))))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------------
# HTTP/1.x heads (and HTTP/2 requests, visible once TLS is decrypted)
# ------------------------------------------------------------------------------------------------------


def _host(host: str | None, target: str) -> str | None:
    if host is None and "://" in target:
        return target.split("://", 1)[1].split("/", 1)[0]
    return host


def _http(row: Row, head: dict[str, Any]) -> list[tuple[Observation, int | None]]:
    """Requests (with None) and responses (with the request frame tshark linked them to)."""
    out: list[tuple[Observation, int | None]] = []
    methods = row.all("http.request.method")
    n = len(methods)
    for i, method in enumerate(methods):
        target = _nth(row.all("http.request.uri"), i, n) or ""
        common = {**head, "method": method, "host": _host(_nth(row.all("http.host"), i, n), target),
                  "path": target, "version": _nth(row.all("http.request.version"), i, n) or "",
                  "user_agent": _nth(row.all("http.user_agent"), i, n)}  # fmt: skip
        if "websocket" in (_nth(row.all("http.upgrade"), i, n) or "").lower():
            out.append((WebSocketUpgrade("websocket_upgrade", **common), None))
        elif method == "CONNECT":
            out.append((HttpConnect("http_connect", **common, target=target), None))
        else:
            out.append((HttpRequest("http_request", **common), None))
    codes = row.ints("http.response.code")
    for i, code in enumerate(codes):
        reason, version = (
            _nth(row.all("http.response.phrase"), i, len(codes)),
            _nth(row.all("http.response.version"), i, len(codes)),
        )
        resp = HttpResponse("http_response", **head, status=code, reason=reason or "", version=version or "")
        linked = _nth(row.all("http.request_in"), i, len(codes))
        out.append((resp, _int(linked) if linked else None))
    return out


def _http2(row: Row, head: dict[str, Any]) -> list[Observation]:
    methods = row.all("http2.headers.method")
    n = len(methods)
    protocols = [
        v
        for k, v in zip(row.all("http2.header.name"), row.all("http2.header.value"), strict=False)
        if k == ":protocol"
    ]
    out: list[Observation] = []
    for i, method in enumerate(methods):
        authority = _nth(row.all("http2.headers.authority"), i, n)
        path = _nth(row.all("http2.headers.path"), i, n) or ""
        agent = _nth(row.all("http2.headers.user_agent"), i, n)
        common = {
            **head,
            "method": method,
            "host": authority,
            "path": path,
            "version": "HTTP/2",
            "user_agent": agent,
        }
        if method == "CONNECT" and (_nth(protocols, i, n) or "").lower() == "websocket":
            out.append(WebSocketUpgrade("websocket_upgrade", **common))  # RFC 8441 extended CONNECT
        elif method == "CONNECT":
            out.append(HttpConnect("http_connect", **common, target=authority or ""))
        else:
            out.append(HttpRequest("http_request", **common))
    return out


def pair_responses(observations: list[Observation], request_in: list[int | None]) -> list[Observation]:
    """Upgrades and CONNECTs get the status of the response tshark linked to them (``http.request_in``).

    Both lists are in frame order; 100 Continue is not an answer.
    """
    out: list[Observation] = []
    waiting: dict[int, deque[int]] = {}
    for obs, linked in zip(observations, request_in, strict=True):
        if isinstance(obs, HttpResponse) and linked is not None and obs.status != 100:
            idx = waiting.get(linked)
            if idx:
                _answer(out, idx.popleft(), obs)
        elif isinstance(obs, HttpRequest) and obs.version != "HTTP/2":
            waiting.setdefault(obs.frame, deque()).append(len(out))
        out.append(obs)
    return out


def _answer(out: list[Observation], idx: int, resp: HttpResponse) -> None:
    req = out[idx]
    if isinstance(req, WebSocketUpgrade):
        out[idx] = replace(req, accepted=resp.status == 101, status=resp.status, response_frame=resp.frame)
    elif isinstance(req, HttpConnect):
        out[idx] = replace(req, status=resp.status, response_frame=resp.frame)
