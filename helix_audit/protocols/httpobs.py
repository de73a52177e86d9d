"""HTTP observations: heads made into records, heads past the stream start, and request/response pairs.

Apart from :mod:`.streams` (the walk of one direction) because these outlive it: a direction that is
done still takes keep-alive heads one segment at a time (:func:`parse_standalone`, HTTP/1.1 RFC 9112
§9.3 persistent connections), and responses are matched to requests per flow only at the end
(:class:`HttpPairing`), after every direction of the capture was walked.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..model import Anomaly, HttpConnect, HttpRequest, HttpResponse, Observation, WebSocketUpgrade
from . import http
from .build import amended, observation_maker
from .interface import NeedData, ParseError

if TYPE_CHECKING:
    from .streams import Direction, Meta


def http_observation(
    head: http.RequestHead | http.ResponseHead, meta: Meta, frames: tuple[int, ...]
) -> Observation:
    if isinstance(head, http.ResponseHead):
        return _HTTP_RESPONSE(meta, frames, "http_response", head.status, head.reason, head.version)
    request = http.request_fields(head)
    if head.is_websocket:
        return _WEBSOCKET(meta, frames, "websocket_upgrade", *request)
    if head.is_connect:
        return _CONNECT(meta, frames, "http_connect", *request, target=http.connect_target(head))
    return _HTTP_REQUEST(meta, frames, "http_request", *request)


# the fields whose values repeat across observations keep one copy of each (``build.SHARED``)
_REQUEST_SHARED = ("method", "host", "path", "version", "user_agent")
_HTTP_RESPONSE = observation_maker(HttpResponse, shared=("reason", "version"))
_HTTP_REQUEST = observation_maker(HttpRequest, shared=_REQUEST_SHARED)
_WEBSOCKET = observation_maker(WebSocketUpgrade, shared=_REQUEST_SHARED)
_CONNECT = observation_maker(HttpConnect, shared=(*_REQUEST_SHARED, "target"))


def parse_standalone(
    d: Direction, seq: int, payload: bytes, frame: int, ts: float, anomalies: list[Anomaly]
) -> Observation | None:
    """A head past the reassembled start (keep-alive requests): one segment, or two when split."""
    if d.partial is not None and seq == d.partial[2] and not http.starts_like_http(payload):
        data, frames = d.partial[0] + payload, (*d.partial[1], frame)
    elif http.starts_like_http(payload):
        data, frames = payload, (frame,)
    else:
        return None
    d.partial = None
    meta = d.meta.moved(frame, ts)
    try:
        head = http.parse_response(data) if data.startswith(b"HTTP/1.") else http.parse_request(data)
    except NeedData as exc:
        if len(frames) == 1:
            d.partial = (data, frames, (seq + len(payload)) % (1 << 32))
        else:
            anomalies.append(
                Anomaly("http_head_truncated", meta.file, frame, f"past the stream start: {exc}")
            )
        return None
    except ParseError as exc:
        anomalies.append(Anomaly("http_head_malformed", meta.file, frame, str(exc)))
        return None
    return http_observation(head, meta, frames)


_PAIRED = (HttpRequest, HttpResponse)  # a tuple: ``A | B`` would build a union object per call


class HttpPairing:
    """Pairs responses with requests per flow in frame order (HTTP/1.1 keeps order), at the end.

    Rows reach the extractor in rounds, not strictly in frame order, so pairing waits for ``pair``.
    """

    def __init__(self, observations: list[Observation]) -> None:
        self.observations = observations
        self.by_flow: dict[int | None, list[int]] = {}

    def handle(self, obs: Observation | None) -> None:
        if obs is None:
            return
        if isinstance(obs, _PAIRED):
            self.by_flow.setdefault(obs.flow_id, []).append(len(self.observations))
        self.observations.append(obs)

    def pair(self) -> None:
        observations = self.observations
        frame_of = lambda k: observations[k].frame  # noqa: E731
        for indexes in self.by_flow.values():
            if len(indexes) < 2:
                continue  # nothing to pair with
            if len(indexes) == 2:  # most flows: one request, one response (``sorted`` is stable)
                a, b = indexes
                first, second = observations[a], observations[b]
                if second.frame < first.frame:
                    a, first, second = b, second, first
                # the loop below on two: a request, then a response that answers it
                if (
                    isinstance(first, HttpRequest)
                    and isinstance(second, HttpResponse)
                    and not 100 <= second.status < 101
                ):
                    self._answer(a, second)
                continue
            ordered = sorted(indexes, key=frame_of)
            waiting: deque[int] = deque()
            for idx in ordered:
                obs = observations[idx]
                if isinstance(obs, HttpRequest):
                    waiting.append(idx)
                elif isinstance(obs, HttpResponse) and waiting and not 100 <= obs.status < 101:
                    self._answer(waiting.popleft(), obs)
        self.by_flow.clear()

    def _answer(self, idx: int, resp: HttpResponse) -> None:
        req = self.observations[idx]
        if isinstance(req, WebSocketUpgrade):
            self.observations[idx] = amended(
                req, {"accepted": resp.status == 101, "status": resp.status, "response_frame": resp.frame}
            )
        elif isinstance(req, HttpConnect):
            self.observations[idx] = amended(req, {"status": resp.status, "response_frame": resp.frame})
