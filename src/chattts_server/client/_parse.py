"""Reading answers, without I/O: responses, SSE events and transport failures become results or
SDK errors. :func:`read` is the one place where an answer that does not have the shape the
protocol promises becomes a :class:`ProtocolError`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx

from ._policy import Call, retry_after
from .errors import (
    APIStatusError,
    ChatTTSError,
    ConnectError,
    ProtocolError,
    StreamError,
    StreamInterruptedError,
    TimeoutError,
    TransportError,
    for_status,
)
from .models import (
    Audio,
    AudioChunk,
    Done,
    Health,
    ImportResult,
    Progress,
    StreamEvent,
    Voice,
    VoiceDefaults,
)
from .sse import Event

T = TypeVar("T")

EXPORT_FORMAT = "chattts-server-voices"
CONTENT_TYPES = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/pcm": "pcm",
    "audio/mpeg": "mp3", "audio/ogg": "opus", "audio/opus": "opus", "audio/flac": "flac",
    "audio/aac": "aac",
}  # fmt: skip
_EVENTS = ("audio", "progress", "done", "error")
# what reading a body of the wrong shape raises: bad JSON (or base64: binascii.Error is a
# ValueError), a missing key, a wrong type, a method missing on the wrong type
_MALFORMED = (ValueError, KeyError, TypeError, AttributeError)


def read(call: Call, what: str, reader: Callable[[], T]) -> T:
    """What ``reader()`` makes of an answer; an answer of the wrong shape (not JSON, a key
    missing, a value of the wrong type) raises :class:`ProtocolError`, naming ``what``."""
    try:
        return reader()
    except _MALFORMED as exc:
        raise ProtocolError(
            f"{call.name}: malformed {what}: {exc}", request_id=call.request_id
        ) from exc


# --- failures -----------------------------------------------------------------------------------


def transport_error(call: Call, exc: httpx.TransportError) -> TransportError:
    """The SDK error for an httpx transport failure: whether the request may have been sent
    decides whether a call that changes something may be repeated."""
    cls: type[TransportError] = TransportError
    if isinstance(exc, httpx.TimeoutException):
        cls = TimeoutError
    elif isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError):
        cls = ConnectError
    detail = str(exc) or "no details"
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return cls(
        f"{call.name}: {type(exc).__name__}: {detail}",
        request_sent=not unsent,
        request_id=call.request_id,
    )


def status_error(call: Call, response: httpx.Response, body: bytes) -> APIStatusError:
    """The SDK error for an error status, with the server's error details (``body``)."""
    status = response.status_code
    detail = _error_detail(body)
    cls = for_status(status)
    message = detail.get("message") or (
        f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip() or 'no body'}"
    )
    return cls(
        str(message),
        status=status,
        type=_str(detail.get("type")),
        code=_str(detail.get("code")),
        param=_str(detail.get("param")),
        request_id=_str(detail.get("request_id"))
        or response.headers.get("x-request-id", call.request_id),
        retry_after=retry_after(response.headers.get("retry-after")),
        from_server=bool(detail),
    )


def _error_detail(body: bytes) -> dict[str, Any]:
    """The ``error`` object of an error body; empty when there is none (a proxy's page)."""
    try:
        detail = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return detail if isinstance(detail, dict) else {}


# --- synthesis ----------------------------------------------------------------------------------


def audio(call: Call, response: httpx.Response) -> Audio:
    """A whole audio file (``POST /v1/tts``, a voice's sample)."""
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    fmt = CONTENT_TYPES.get(ctype)
    if fmt is None:
        raise ProtocolError(
            f"{call.name}: expected audio, got {ctype or 'no content type'}",
            request_id=call.request_id,
        )
    rate = response.headers.get("x-sample-rate", "")
    ignored = response.headers.get("x-ignored-fields", "")
    return Audio(
        response.content,
        fmt,
        int(rate) if rate.isdigit() else None,
        response.headers.get("x-request-id", call.request_id),
        ignored_fields=tuple(f for f in ignored.split(",") if f),
        endpoint=call.endpoint,
    )


def event_stream(call: Call, response: httpx.Response) -> None:
    """Check that a streamed answer is an event stream (its events are read one by one)."""
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        raise ProtocolError(
            f"{call.name}: expected text/event-stream, got {ctype or 'no content type'}",
            request_id=call.request_id,
        )


@dataclass
class Received:
    """What a stream has delivered to its consumer so far."""

    events: int = 0
    chunks: int = 0
    bytes: int = 0

    def add(self, event: StreamEvent) -> None:
        self.events += 1
        if isinstance(event, AudioChunk):
            self.chunks += 1
            self.bytes += len(event.pcm)


def stream_event(call: Call, sse: Event, got: Received) -> StreamEvent | None:
    """The typed event of one SSE event (``None`` for names this SDK does not know).

    Raises:
        StreamError: the server sent ``event: error``.
    """
    if sse.event not in _EVENTS:
        return None
    event = read(call, f"{sse.event} event", lambda: _event(call, sse, got))
    if isinstance(event, StreamError):
        raise event
    return event


def _event(call: Call, sse: Event, got: Received) -> StreamEvent | StreamError:
    p = json.loads(sse.data)
    if sse.event == "audio":
        if p.get("format", "pcm_s16le") != "pcm_s16le":
            raise ValueError(f"audio format {p['format']!r}")
        return AudioChunk(
            int(p["seq"]), int(p["sample_rate"]), base64.b64decode(p["audio"], validate=True)
        )
    if sse.event == "progress":
        return Progress(int(p["sentences_done"]), int(p["sentences_total"]), int(p["audio_ms"]))
    if sse.event == "done":
        ttfa = p.get("time_to_first_audio_ms")
        return Done(
            str(p["request_id"]),
            int(p["audio_duration_ms"]),
            int(p["elapsed_ms"]),
            None if ttfa is None else int(ttfa),
            str(p["finish_reason"]),
            call.endpoint,
        )
    detail = p["error"]
    return StreamError(
        str(detail["message"]),
        type=_str(detail.get("type")),
        code=_str(detail.get("code")),
        param=_str(detail.get("param")),
        request_id=_str(detail.get("request_id")) or call.request_id,
        bytes_received=got.bytes,
        chunks_received=got.chunks,
    )


def interrupted(call: Call, exc: ChatTTSError, got: Received) -> ChatTTSError:
    """What to raise for ``exc`` once part of a stream was delivered: never a retry."""
    if isinstance(exc, StreamError | StreamInterruptedError | ProtocolError):
        return exc
    return StreamInterruptedError(
        f"{call.name}: stream cut after {got.chunks} audio chunks ({got.bytes} bytes): {exc}",
        bytes_received=got.bytes, chunks_received=got.chunks, request_id=call.request_id,
    )  # fmt: skip


def ended_early(call: Call, got: Received) -> StreamInterruptedError:
    """The error of a stream that ended without its ``done`` event."""
    return StreamInterruptedError(
        f"{call.name}: the stream ended without its done event",
        bytes_received=got.bytes, chunks_received=got.chunks, request_id=call.request_id,
    )  # fmt: skip


def health(call: Call, response: httpx.Response) -> Health:
    """``GET /readyz``'s answer: 200 ready, 503 not (yet); a 503 without a status (a proxy's)
    is an error."""

    def status() -> Health:
        body = response.json()
        ready = response.status_code == 200
        return Health(str(body["status"]), ready, body.get("model"), call.endpoint)

    try:
        return read(call, "health status", status)
    except ProtocolError:
        if response.is_success:
            raise
        raise status_error(call, response, response.content) from None


# --- the voice library --------------------------------------------------------------------------


def voices(call: Call, response: httpx.Response) -> list[Voice]:
    return read(call, "voice list", lambda: [_voice(v) for v in response.json()["data"]])


def voice(call: Call, response: httpx.Response) -> Voice:
    return read(call, "voice", lambda: _voice(response.json()))


def _voice(v: Mapping[str, Any]) -> Voice:
    seed, created_at, defaults = v.get("seed"), v.get("created_at"), v.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise TypeError(f"defaults is {type(defaults).__name__}, not an object")
    return Voice(
        str(v["id"]),
        str(v["kind"]),
        None if seed is None else int(seed),
        _str(v.get("description")),
        _str(v.get("language")),
        cast(VoiceDefaults, defaults),
        _str(v.get("model_fingerprint")),
        None if created_at is None else float(created_at),
    )


def export_document(call: Call, response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        document = None
    if not (
        isinstance(document, dict)
        and document.get("format") == EXPORT_FORMAT
        and isinstance(document.get("voices"), list)
    ):
        raise ProtocolError(
            f"{call.name}: the answer is not a voice export document", request_id=call.request_id
        )
    return document


def import_result(call: Call, response: httpx.Response) -> ImportResult:
    def result() -> ImportResult:
        body = response.json()
        return ImportResult(
            tuple(str(n) for n in body["imported"]), tuple(str(n) for n in body["skipped"])
        )

    return read(call, "import result", result)


def no_content(call: Call, response: httpx.Response) -> None:
    return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
