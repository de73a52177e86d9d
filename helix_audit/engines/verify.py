"""Second opinion: run the native engine and tshark on the same captures and compare what they saw.

Both engines' observations are reduced to keys ``(file, type, frame, key)`` - the key being the
field an auditor acts on: the first qname of a DNS message, the SNI of a ClientHello, the path of an
HTTP request, the path and answer status of a WebSocket upgrade, the target and status of a CONNECT -
and compared as multisets (a frame can hold several messages). Every key only one engine produced
gets the known reason that fits it, if any (tshark decodes by port, decode-as, tunnels, TLS key log,
a damaged file), so an analyst sees at once which differences are expected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..model import HttpConnect, Observation, WebSocketUpgrade
from .tshark import TsharkOutput, run_tshark

COMPARED = ("dns_query", "dns_response", "tls_client_hello", "http_request", "websocket_upgrade", "http_connect")
DNS_PORTS = frozenset({53, 5353, 5355})
TSHARK_TLS_PORTS = frozenset({261, 443, 448, 465, 563, 614, 636, 853, 989, 990, 992, 993, 994, 995, 3269, 4433, 5061, 8443})
TSHARK_HTTP_PORTS = frozenset({80, 3128, 3132, 5985, 8080, 8088, 11371, 1900, 2869, 2710})
TUNNELS = ("vxlan", "geneve", "teredo", "gre", "erspan", "gtp", "l2tp", "socks", "mpls", "pppoe")


@dataclass(frozen=True, order=True)
class Key:
    file: str
    type: str
    frame: int
    key: str

    def text(self) -> str:
        return f"{Path(self.file).name}:{self.frame:<6} {self.type:<17} {self.key}"


@dataclass(frozen=True)
class Difference:
    key: Key
    engine: str  # the engine that saw it: "native" | "tshark"
    reason: str | None  # the known difference that explains it, None when unexplained


@dataclass(frozen=True)
class VerifyResult:
    files: tuple[str, ...]
    matches: tuple[Key, ...]
    only_native: tuple[Difference, ...]
    only_tshark: tuple[Difference, ...]
    warnings: tuple[str, ...]  # tshark's complaints (damaged files)

    @property
    def agree(self) -> bool:
        return not self.only_native and not self.only_tshark

    @property
    def exit_code(self) -> int:
        """0 when the engines agree, 1 when they do not."""
        return 0 if self.agree else 1

    @property
    def unexplained(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.only_native + self.only_tshark if d.reason is None)


def key_of(obs: Observation) -> Key | None:
    """The comparison key of one observation (None for types not compared)."""
    if obs.type not in COMPARED:
        return None
    value = getattr(obs, "qname", None) or getattr(obs, "sni", None) or getattr(obs, "path", None) or ""
    if isinstance(obs, HttpConnect):
        value = f"{obs.target} -> {obs.status}"
    elif isinstance(obs, WebSocketUpgrade):
        value = f"{obs.path} -> {obs.status}"
    return Key(obs.file, obs.type, obs.frame, str(value))


def _keys(observations: Iterable[Observation]) -> Counter[Key]:
    return Counter(k for k in map(key_of, observations) if k is not None)


def verify(
    paths: Iterable[str | Path], *, keylog: Path | None = None, decode_as: Sequence[str] = ()
) -> VerifyResult:
    """Run both engines over ``paths`` (files or folders) and compare their observations."""
    from ..capture import expand_inputs
    from ..pipeline import scan

    files = expand_inputs([Path(p) for p in paths])
    native = scan(files)
    outs = [run_tshark(f, keylog=keylog, decode_as=decode_as) for f in files]
    nkeys = _keys(native.observations)
    tkeys = _keys(o for out in outs for o in out.observations)
    explain = _Explainer(outs, decode_as)
    return VerifyResult(
        files=tuple(str(f) for f in files),
        matches=tuple(sorted((nkeys & tkeys).elements())),
        only_native=tuple(explain(k, "native") for k in sorted((nkeys - tkeys).elements())),
        only_tshark=tuple(explain(k, "tshark") for k in sorted((tkeys - nkeys).elements())),
        warnings=tuple(w for out in outs for w in out.warnings),
    )


class _Explainer:
    """Finds the known difference behind a key only one engine produced."""

    def __init__(self, outs: list[TsharkOutput], decode_as: Sequence[str]) -> None:
        self.decode_as = list(decode_as)
        self.stopped = {o.file: o.frames_seen for o in outs if o.returncode != 0}
        self.layers: dict[tuple[str, int], str] = {}
        self.ports: dict[tuple[str, int], tuple[int, int]] = {}
        for out in outs:
            for obs, layers in zip(out.observations, out.layers, strict=True):
                self.layers[(out.file, obs.frame)] = layers

    def __call__(self, key: Key, engine: str) -> Difference:
        return Difference(key, engine, self._reason(key, engine))

    def _reason(self, key: Key, engine: str) -> str | None:
        if key.file in self.stopped and key.frame > self.stopped[key.file]:
            return f"tshark stopped at frame {self.stopped[key.file]}: the file is damaged there"
        layers = self.layers.get((key.file, key.frame), "").split(":")
        tunnel = next((t for t in TUNNELS if t in layers), None)
        if engine == "tshark" and tunnel:
            return f"inside a {tunnel} tunnel, which tshark decapsulates"
        if engine == "tshark" and key.type in ("http_request", "websocket_upgrade", "http_connect") and "tls" in layers:
            return "inside TLS decrypted with the key log: the native engine cannot read it"
        if engine == "native" and key.type == "tls_client_hello":
            return "tshark decodes TLS by port and heuristics; on other ports it needs decode-as (tcp.port==N,tls)"
        if engine == "native" and key.type in ("http_request", "websocket_upgrade", "http_connect"):
            return "tshark decodes HTTP on its known ports only (80, 8080, 3128 ...); decode-as tcp.port==N,http"
        if key.type.startswith("dns"):
            return "DNS: tshark decodes it only on known ports (53, 5353, 5355) or with decode-as, and splits malformed messages differently"
        return None


def format_verify(result: VerifyResult, *, verbose: bool = False) -> str:
    """The text report of ``verify``: summary, differences with their reasons, the verdict."""
    n_native = len(result.matches) + len(result.only_native)
    n_tshark = len(result.matches) + len(result.only_tshark)
    lines = [
        f"verify: {len(result.files)} file(s); native {n_native} observations, tshark {n_tshark}; "
        f"{len(result.matches)} match, {len(result.only_native)} only native, {len(result.only_tshark)} only tshark"
    ]
    by_type = Counter(k.type for k in result.matches)
    lines += [f"  match {t:<17} {by_type[t]}" for t in COMPARED if by_type[t]]
    for title, diffs in (("only native", result.only_native), ("only tshark", result.only_tshark)):
        if diffs:
            lines.append(f"{title}:")
            lines += [f"  {d.key.text()}" + (f"   [{d.reason}]" if d.reason else "   [unexplained]") for d in diffs]
    if verbose and result.matches:
        lines.append("matches:")
        lines += [f"  {k.text()}" for k in result.matches]
    lines += [f"warning: {w}" for w in result.warnings]
    if result.agree:
        lines.append("result: the engines agree")
    else:
        lines.append(f"result: the engines differ ({len(result.unexplained)} difference(s) without a known reason)")
    return "\n".join(lines)


__all__ = ["COMPARED", "Difference", "Key", "VerifyResult", "format_verify", "key_of", "verify"]
