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
from typing import TYPE_CHECKING

from ..model import HttpConnect, Observation, WebSocketUpgrade
from .tshark import TsharkOutput, run_tshark

if TYPE_CHECKING:
    from ..pipeline import Scan

COMPARED = (
    "dns_query",
    "dns_response",
    "tls_client_hello",
    "http_request",
    "websocket_upgrade",
    "http_connect",
)
DNS_PORTS = frozenset({53, 5353, 5355})
TSHARK_TLS_PORTS = frozenset(
    {261, 443, 448, 465, 563, 614, 636, 853, 989, 990, 992, 993, 994, 995, 3269, 4433, 5061, 8443}
)
TSHARK_HTTP_PORTS = frozenset({80, 3128, 3132, 5985, 8080, 8088, 11371, 1900, 2869, 2710})
NATIVE_LINK_TYPES = frozenset({0, 1, 12, 14, 101, 108, 113, 228, 229, 276})  # decode.link.link_layer
HTTP_TYPES = ("http_request", "websocket_upgrade", "http_connect")
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
    explain = _Explainer(native, outs, decode_as)
    return VerifyResult(
        files=tuple(str(f) for f in files),
        matches=tuple(sorted((nkeys & tkeys).elements())),
        only_native=tuple(explain(k, "native") for k in sorted((nkeys - tkeys).elements())),
        only_tshark=tuple(explain(k, "tshark") for k in sorted((tkeys - nkeys).elements())),
        warnings=tuple(w for out in outs for w in out.warnings),
    )


class _Explainer:
    """Finds the known difference behind a key only one engine produced (None: unexplained)."""

    def __init__(self, native: Scan, outs: list[TsharkOutput], decode_as: Sequence[str]) -> None:
        self.decode_as = list(decode_as)
        self.stopped = {o.file: o.frames_seen for o in outs if o.returncode != 0}
        self.layers = {
            (o.file, obs.frame): lay for o in outs for obs, lay in zip(o.observations, o.layers, strict=True)
        }
        self.obs: dict[str, dict[tuple[str, int], Observation]] = {"native": {}, "tshark": {}}
        self.by_key: dict[str, dict[tuple[str, str, str], list[Observation]]] = {"native": {}, "tshark": {}}
        for engine, seen in (
            ("native", native.observations),
            ("tshark", [x for o in outs for x in o.observations]),
        ):
            for obs in seen:
                key = key_of(obs)
                if key is not None:
                    self.obs[engine][(obs.file, obs.frame)] = obs
                    self.by_key[engine].setdefault((key.file, key.type, key.key), []).append(obs)
        self.anomalies = {(a.file, a.frame): a for a in native.anomalies if a.frame is not None}
        self.unknown_link = {
            i.path: i.link_types for i in native.inputs if set(i.link_types) - NATIVE_LINK_TYPES
        }

    def __call__(self, key: Key, engine: str) -> Difference:
        return Difference(key, engine, self._reason(key, engine))

    def _reason(self, key: Key, engine: str) -> str | None:
        obs = self.obs[engine].get((key.file, key.frame))
        for rule in (self._stopped, self._same_message, self._link, self._layers, self._anomaly, self._ports):
            reason = rule(key, engine, obs)
            if reason is not None:
                return reason
        return None

    def _stopped(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        last = self.stopped.get(key.file)
        if engine == "native" and last is not None and key.frame > last:
            return f"tshark stopped after frame {last}: the file is damaged there"
        return None

    def _same_message(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        other = "tshark" if engine == "native" else "native"
        for twin in self.by_key[other].get((key.file, key.type, key.key), []):
            mine = obs.frames if obs is not None else (key.frame,)
            if twin.frame != key.frame and (key.frame in twin.frames or twin.frame in mine):
                return (
                    "same message at another frame: tshark reports an HTTP request where its body completes"
                )
        return None

    def _link(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        if engine == "tshark" and key.file in self.unknown_link:
            kinds = ", ".join(str(t) for t in self.unknown_link[key.file])
            return f"link type {kinds} (e.g. 802.11 radiotap, NFLOG) is not decoded by the native engine"
        return None

    def _layers(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        layers = self.layers.get((key.file, key.frame), "").split(":") if engine == "tshark" else []
        tunnel = next((t for t in TUNNELS if t in layers), None)
        if tunnel is not None:
            return f"inside a {tunnel} tunnel, which tshark decapsulates"
        app = next((p for p in ("http", "http2") if p in layers), None)
        if key.type in HTTP_TYPES and app is not None and "tls" in layers[: layers.index(app)]:
            return f"{app.upper()} inside TLS, decrypted with the key log: the native engine cannot read it"
        return None

    def _anomaly(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        found = self.anomalies.get((key.file, key.frame))
        if engine == "tshark" and found is not None:
            return (
                f"the native engine recorded {found.name} here ({found.detail}); tshark shows what it decoded"
            )
        return None

    def _ports(self, key: Key, engine: str, obs: Observation | None) -> str | None:
        if obs is None:
            return None
        port = obs.dport if obs.dport < obs.sport or engine == "native" else obs.sport
        ports = {obs.sport, obs.dport}
        rule = next(
            (r for r in self.decode_as if any(f"port=={p}," in r.replace(" ", "") for p in ports)), None
        )
        if engine == "tshark" and rule is not None:
            return f"decode-as {rule} makes tshark decode this port; the native engine keeps its own rules"
        if key.type.startswith("dns") and not ports & DNS_PORTS:
            return f"DNS on port {port}: tshark decodes it there, the native engine only on 53, 5353 and 5355"
        if engine == "native" and key.type == "tls_client_hello" and not ports & TSHARK_TLS_PORTS:
            return f"TLS on port {port}: tshark needs a known port (decode-as tcp.port=={port},tls)"
        if engine == "native" and key.type in HTTP_TYPES and not ports & TSHARK_HTTP_PORTS:
            return f"HTTP on port {port}: tshark needs a known port (decode-as tcp.port=={port},http)"
        return None


def format_verify(result: VerifyResult, *, verbose: bool = False) -> str:
    """The text report of ``verify``: summary, differences with their reasons, the verdict."""
    n_native = len(result.matches) + len(result.only_native)
    n_tshark = len(result.matches) + len(result.only_tshark)
    lines = [
        f"verify: {len(result.files)} file(s); native {n_native} observations, tshark {n_tshark}; "
        f"{len(result.matches)} match, {len(result.only_native)} only native, "
        f"{len(result.only_tshark)} only tshark"
    ]
    by_type = Counter(k.type for k in result.matches)
    lines += [f"  match {t:<17} {by_type[t]}" for t in COMPARED if by_type[t]]
    for title, diffs in (("only native", result.only_native), ("only tshark", result.only_tshark)):
        if diffs:
            lines.append(f"{title}:")
            lines += [
                f"  {d.key.text()}" + (f"   [{d.reason}]" if d.reason else "   [unexplained]") for d in diffs
            ]
    if verbose and result.matches:
        lines.append("matches:")
        lines += [f"  {k.text()}" for k in result.matches]
    lines += [f"warning: {w}" for w in result.warnings]
    if result.agree:
        lines.append("result: the engines agree")
    else:
        lines.append(
            f"result: the engines differ ({len(result.unexplained)} difference(s) without a known reason)"
        )
    return "\n".join(lines)


__all__ = ["COMPARED", "Difference", "Key", "VerifyResult", "format_verify", "key_of", "verify"]
