"""What both clients share and decide without I/O: configuration (TLS, API key), request
building, the retry policy, the circuit breaker, and turning responses and events into results
or errors."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Generic, Literal, TypeVar, cast
from urllib.parse import quote, urlencode, urlsplit

import httpx

from .. import __version__
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ChatTTSError,
    CircuitOpenError,
    ConflictError,
    ConnectError,
    InternalServerError,
    NotAcceptableError,
    NotFoundError,
    PayloadTooLargeError,
    ProtocolError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    StreamInterruptedError,
    TimeoutError,
    TransportError,
    UnsupportedMediaTypeError,
)
from .models import (
    Audio,
    AudioChunk,
    Done,
    Health,
    ImportResult,
    Progress,
    StreamEvent,
    TTSParams,
    Voice,
    VoiceChanges,
    VoiceDefaults,
)
from .sse import Event
from .wav import read_info

log = logging.getLogger("chattts_server.client")

DEFAULT_URL = "http://localhost:9700"
SERVER_SAMPLE_RATE = 24000  # the server's rate when a request names none
RETRY_STATUSES = frozenset({429, 502, 503, 504})
REFUSED_STATUSES = frozenset({429, 503})  # refused before any work: safe to repeat anything
EXPORT_FORMAT = "chattts-server-voices"

T = TypeVar("T")
_PARAMS = frozenset(TTSParams.__annotations__)
_VOICE_CHANGES = frozenset(VoiceChanges.__annotations__)
_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    405: BadRequestError,
    406: NotAcceptableError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}
_CONTENT_TYPES = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/pcm": "pcm",
    "audio/mpeg": "mp3", "audio/ogg": "opus", "audio/opus": "opus", "audio/flac": "flac",
    "audio/aac": "aac",
}  # fmt: skip
_SUFFIXES = {".wav": "wav", ".pcm": "pcm", ".mp3": "mp3", ".ogg": "opus", ".opus": "opus",
             ".flac": "flac", ".aac": "aac"}  # fmt: skip


@dataclass(frozen=True)
class Timeout:
    """Time limits, in seconds.

    Attributes:
        connect: To open a connection.
        read: The longest wait for the next bytes. A whole-file synthesis sends nothing until
            it is done, so this also bounds its synthesis time; streams get keep-alives.
        total: Deadline of a whole call, retries and backoff sleeps included (``None``: no
            deadline). Retrying stops when the next attempt could not start before it.
    """

    connect: float = 5.0
    read: float = 120.0
    total: float | None = None

    @classmethod
    def of(cls, value: Timeout | float) -> Timeout:
        """A :class:`Timeout` as is; a number ``s`` is a deadline of ``s`` seconds per call
        (connect within ``min(5, s)``, no read longer than ``s``)."""
        if isinstance(value, Timeout):
            return value
        return cls(connect=min(cls.connect, value), read=value, total=value)


DEFAULT_TIMEOUT = Timeout()


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying.

    Retried: 429, 502, 503, 504, connection failures and timeouts — and a stream only while
    nothing of it has been delivered. A call that changes the voice library (create, update,
    delete, import) is retried only when the server surely did nothing: the connection could
    not be opened (:attr:`TransportError.request_sent` is false), or a 429 or 503 (refused
    before any work). After a dropped connection, a read timeout, a 502 or a 504 the change
    may or may not have happened: the error is raised, and ``voices.get()`` tells.

    The wait before retry ``n`` (0-based) is the server's ``Retry-After`` capped at
    ``max_retry_after``, else "full jitter" backoff: uniform in
    ``[0, min(max_backoff, backoff * 2**n))``.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, retry: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``retry``; ``rand`` is uniform in [0, 1)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return rand() * min(self.max_backoff, self.backoff * 2**retry)


BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Fails calls fast while the server is in trouble.

    ``threshold`` consecutive failed calls (server-side trouble once retries are exhausted;
    never a 4xx input error) open the circuit: calls raise :class:`CircuitOpenError` without
    touching the network for ``cooldown`` seconds. Then one trial call goes through
    (half-open): its success closes the circuit, its failure opens it again. Thread-safe.
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        """``closed`` (normal), ``open`` (failing fast) or ``half-open`` (trial allowed)."""
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown else "open"

    def acquire(self) -> bool:
        """Admit a call or raise :class:`CircuitOpenError`; True when it is the trial call."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return False
            if state == "half-open" and not self._trial:
                self._trial = True
                return True
            assert self._opened_at is not None
            retry_in = max(0.0, self._opened_at + self.cooldown - self._clock())
            raise CircuitOpenError(
                f"circuit open after {self._failures} consecutive failures; "
                + ("a trial request is in flight" if self._trial else f"retry in {retry_in:.1f}s"),
                retry_in=retry_in,
            )

    def success(self) -> None:
        """Record a call the server answered properly: close the circuit."""
        with self._lock:
            self._failures, self._opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        """Record a failed call: open the circuit at the threshold, or after a failed trial."""
        with self._lock:
            self._failures += 1
            if self._trial or (self._opened_at is None and self._failures >= self.threshold):
                self._opened_at, self._trial = self._clock(), False

    def release(self, trial: bool) -> None:
        """Record a call that ended without a verdict (cancelled); a trial may go again."""
        if trial:
            with self._lock:
                self._trial = False


@dataclass
class _Call:
    name: str
    request_id: str
    deadline: float | None
    max_retries: int
    guarded: bool  # counted by the breaker
    idempotent: bool = True  # False: changes something, so repeated only if surely not done
    trial: bool = False
    retries: int = 0


@dataclass
class _Received:
    """What a stream has delivered to its consumer so far."""

    events: int = 0
    chunks: int = 0
    bytes: int = 0

    def add(self, event: StreamEvent) -> None:
        self.events += 1
        if isinstance(event, AudioChunk):
            self.chunks += 1
            self.bytes += len(event.pcm)


def server_fault(exc: BaseException) -> bool:
    """True for failures that are the server's (or the network's) trouble, not the caller's:
    these count against the breaker and may be answered with the fallback audio."""
    if isinstance(exc, APIStatusError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, ChatTTSError) and not isinstance(exc, CircuitOpenError)


def retryable(exc: ChatTTSError, *, idempotent: bool = True) -> bool:
    """True for failures worth another attempt (before anything was delivered). A call that is
    not ``idempotent`` is repeated only if the server surely did nothing (see
    :class:`RetryPolicy`)."""
    if isinstance(exc, APIStatusError):
        return exc.status in (RETRY_STATUSES if idempotent else REFUSED_STATUSES)
    if not idempotent:
        return isinstance(exc, TransportError) and not exc.request_sent
    return isinstance(exc, ConnectError | TimeoutError | StreamInterruptedError)


def ssl_context(
    ca: str | os.PathLike[str] | None,
    cert: str | os.PathLike[str] | None,
    key: str | os.PathLike[str] | None,
) -> ssl.SSLContext | None:
    """The TLS context for ``ca``, ``cert`` and ``key`` (see :class:`BaseClient`); ``None``
    when none is given (httpx's default verification applies).

    Raises:
        ValueError: ``key`` without ``cert``.
        OSError, ssl.SSLError: a file is missing or not a PEM certificate or key.
    """
    if key is not None and cert is None:
        raise ValueError("a client key needs its certificate (cert)")
    if ca is None and cert is None:
        return None
    ctx = (
        ssl.create_default_context(cafile=os.fspath(ca))
        if ca is not None
        else httpx.create_ssl_context()
    )
    if cert is not None:
        ctx.load_cert_chain(os.fspath(cert), None if key is None else os.fspath(key))
    return ctx


def _bearer(api_key: str | None) -> dict[str, str]:
    if api_key is None:
        return {}
    if (
        not api_key
        or api_key != api_key.strip()
        or not api_key.isascii()
        or not api_key.isprintable()
    ):
        raise ValueError("api_key must be printable ASCII, without surrounding spaces")
    return {"Authorization": f"Bearer {api_key}"}


@dataclass(frozen=True)
class _Request(Generic[T]):
    """One call with a whole-body answer, described without I/O: what to send and how to read
    the answer; each client's ``_run`` sends it."""

    method: str
    path: str
    parse: Callable[[_Call, httpx.Response], T]
    json: Any = None
    idempotent: bool = True

    @property
    def name(self) -> str:
        return f"{self.method} {self.path.partition('?')[0]}"


class BaseClient:
    """Configuration and every I/O-free decision of :class:`Client` and :class:`AsyncClient`.

    Args:
        base_url: The server, e.g. ``http://localhost:9700``.
        timeout: A :class:`Timeout`, or seconds as a per-call deadline.
        retries: Retries per call (``0``: none), or a :class:`RetryPolicy`.
        breaker_threshold: Consecutive failed calls that open the circuit (``None``: no
            breaker).
        breaker_cooldown: Seconds the circuit stays open before a trial call.
        fallback: Prerecorded audio returned by ``synthesize`` (flagged ``fallback=True``)
            when the server cannot answer — retries exhausted, circuit open, 5xx — but never
            for a 4xx input error: a file path, or an ``http(s)://`` URL fetched once, lazily.
        headers: Extra headers sent with every request.
        api_key: Sent as ``Authorization: Bearer <api_key>`` with every request to the server
            (not with the fetch of a fallback URL); never logged, nor shown in errors or reprs.
        ca: A CA bundle (PEM file) to verify the server's certificate with, instead of the
            system's.
        cert: A client certificate (PEM) for servers that require one (mTLS); its private key
            is ``key``, or in the same file.
        key: The private key (PEM) of ``cert``.
        clock: Monotonic time source (seconds), for deadlines and the breaker.
        random: Uniform [0, 1) source for the backoff jitter.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: Timeout | float,
        retries: int | RetryPolicy,
        breaker_threshold: int | None,
        breaker_cooldown: float,
        fallback: str | os.PathLike[str] | None,
        headers: Mapping[str, str] | None,
        api_key: str | None,
        ca: str | os.PathLike[str] | None,
        cert: str | os.PathLike[str] | None,
        key: str | os.PathLike[str] | None,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = Timeout.of(timeout)
        self.retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)
        self.breaker = (
            CircuitBreaker(breaker_threshold, breaker_cooldown, clock)
            if breaker_threshold is not None
            else None
        )
        self._fallback_source = fallback
        self._fallback: Audio | None = None
        self._headers = {"User-Agent": f"chattts-server-client/{__version__}", **(headers or {})}
        self._auth = _bearer(api_key)
        self._ssl = ssl_context(ca, cert, key)
        self._clock = clock
        self._random = random

    def _http_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": self._headers,
            "timeout": httpx.Timeout(self.timeout.read, connect=self.timeout.connect),
        }
        if self._ssl is not None:
            options["verify"] = self._ssl
        return options

    # --- one call: breaker, deadline, retries ----------------------------------------------

    @contextmanager
    def _call(
        self, name: str, *, guarded: bool = True, retries: bool = True, idempotent: bool = True
    ) -> Iterator[_Call]:
        """Admit a call through the breaker and record its outcome when it ends."""
        guarded = guarded and self.breaker is not None
        deadline = None if self.timeout.total is None else self._clock() + self.timeout.total
        call = _Call(
            name,
            uuid.uuid4().hex,
            deadline,
            self.retry.max_retries if retries else 0,
            guarded,
            idempotent,
        )
        if guarded:
            assert self.breaker is not None
            call.trial = self.breaker.acquire()
        try:
            yield call
        except BaseException as exc:
            self._verdict(call, exc)
            raise
        self._verdict(call, None)

    def _verdict(self, call: _Call, exc: BaseException | None) -> None:
        if not call.guarded:
            return
        assert self.breaker is not None
        if exc is None or isinstance(exc, GeneratorExit):  # a consumer leaving a healthy stream
            self.breaker.success()
        elif server_fault(exc):
            self.breaker.failure()
        elif isinstance(exc, ChatTTSError):  # the server answered: an input error
            self.breaker.success()
        else:
            self.breaker.release(call.trial)

    def _timeout_for(self, call: _Call) -> httpx.Timeout:
        """This attempt's httpx timeouts, shortened to the time left before the deadline."""
        connect, read = self.timeout.connect, self.timeout.read
        if call.deadline is not None:
            left = self._time_left(call)
            connect, read = min(connect, left), min(read, left)
        return httpx.Timeout(read, connect=connect)

    def _time_left(self, call: _Call) -> float:
        assert call.deadline is not None
        left = call.deadline - self._clock()
        if left <= 0:
            raise TimeoutError(
                f"{call.name}: the {self.timeout.total}s deadline passed",
                request_id=call.request_id,
            )
        return left

    def _check_deadline(self, call: _Call) -> None:
        if call.deadline is not None:
            self._time_left(call)

    def _retry_delay(self, call: _Call, err: ChatTTSError) -> float | None:
        """Seconds to sleep before retrying after ``err``, or ``None`` to give up."""
        if not retryable(err, idempotent=call.idempotent) or call.retries >= call.max_retries:
            return None
        retry_after = err.retry_after if isinstance(err, APIStatusError) else None
        delay = self.retry.delay(call.retries, retry_after, self._random)
        if call.deadline is not None and self._clock() + delay >= call.deadline:
            log.warning(
                "%s failed (request %s): %s; not retrying, the deadline would pass",
                call.name, call.request_id, err,
            )  # fmt: skip
            return None
        call.retries += 1
        log.warning(
            "%s failed (request %s): %s; retry %d/%d in %.2fs",
            call.name, call.request_id, err, call.retries, call.max_retries, delay,
        )  # fmt: skip
        return delay

    def _headers_for(self, call: _Call, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {"X-Request-ID": call.request_id, **self._auth, **(extra or {})}

    # --- requests ---------------------------------------------------------------------------

    def _tts_body(self, text: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``POST /v1/tts`` JSON body for ``text`` and :class:`TTSParams`."""
        unknown = sorted(set(params) - _PARAMS)
        if unknown:
            raise TypeError(f"unknown synthesis parameter(s): {', '.join(unknown)}")
        body: dict[str, Any] = {"text": text}
        for key, value in params.items():
            if value is None:
                continue
            if key == "ref_audio":
                value = _b64_clip(value)
            elif key in ("pauses", "extensions"):
                value = dict(value)
            body[key] = value
        return body

    # --- responses --------------------------------------------------------------------------

    def _transport_error(self, call: _Call, exc: httpx.TransportError) -> TransportError:
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

    def _status_error(self, call: _Call, response: httpx.Response, body: bytes) -> APIStatusError:
        status = response.status_code
        detail = _error_detail(body)
        cls = _STATUS_ERRORS.get(status) or (
            InternalServerError if status >= 500 else APIStatusError
        )
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
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def _audio(self, call: _Call, response: httpx.Response) -> Audio:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = _CONTENT_TYPES.get(ctype)
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
        )

    def _check_event_stream(self, call: _Call, response: httpx.Response) -> None:
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            raise ProtocolError(
                f"{call.name}: expected text/event-stream, got {ctype or 'no content type'}",
                request_id=call.request_id,
            )

    def _stream_event(self, call: _Call, sse: Event, got: _Received) -> StreamEvent | None:
        """The typed event of one SSE event (``None`` for names this SDK does not know)."""
        if sse.event not in ("audio", "progress", "done", "error"):
            return None
        try:
            p = json.loads(sse.data)
            if sse.event == "audio":
                if p.get("format", "pcm_s16le") != "pcm_s16le":
                    raise ValueError(f"audio format {p['format']!r}")
                return AudioChunk(
                    int(p["seq"]),
                    int(p["sample_rate"]),
                    base64.b64decode(p["audio"], validate=True),
                )
            if sse.event == "progress":
                return Progress(int(p["sentences_done"]), int(p["sentences_total"]),
                                int(p["audio_ms"]))  # fmt: skip
            if sse.event == "done":
                ttfa = p.get("time_to_first_audio_ms")
                return Done(
                    str(p["request_id"]),
                    int(p["audio_duration_ms"]),
                    int(p["elapsed_ms"]),
                    None if ttfa is None else int(ttfa),
                    str(p["finish_reason"]),
                )
            detail = p["error"]
            err = StreamError(
                str(detail["message"]),
                type=_str(detail.get("type")),
                code=_str(detail.get("code")),
                param=_str(detail.get("param")),
                request_id=_str(detail.get("request_id")) or call.request_id,
                bytes_received=got.bytes,
                chunks_received=got.chunks,
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ProtocolError(
                f"{call.name}: malformed {sse.event} event: {exc}", request_id=call.request_id
            ) from exc
        raise err

    def _interrupted(self, call: _Call, exc: ChatTTSError, got: _Received) -> ChatTTSError:
        """What to raise for ``exc`` once part of a stream was delivered: never a retry."""
        if isinstance(exc, StreamError | StreamInterruptedError | ProtocolError):
            return exc
        err = StreamInterruptedError(
            f"{call.name}: stream cut after {got.chunks} audio chunks ({got.bytes} bytes): {exc}",
            bytes_received=got.bytes, chunks_received=got.chunks, request_id=call.request_id,
        )  # fmt: skip
        return err

    def _ended_early(self, call: _Call, got: _Received) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"{call.name}: the stream ended without its done event",
            bytes_received=got.bytes, chunks_received=got.chunks, request_id=call.request_id,
        )  # fmt: skip

    # --- the voice library ------------------------------------------------------------------

    def _voice_list(self) -> _Request[list[Voice]]:
        return _Request("GET", "/v1/voices", self._voices)

    def _voice_get(self, name: str) -> _Request[Voice]:
        return _Request("GET", _voice_path(name), self._voice)

    def _voice_create(
        self,
        name: str,
        *,
        seed: int | None,
        spk_emb: str | None,
        ref_audio: bytes | None,
        ref_text: str | None,
        description: str | None,
        language: str | None,
        defaults: VoiceDefaults | None,
    ) -> _Request[Voice]:
        fields = {
            "seed": seed,
            "spk_emb": spk_emb,
            "ref_audio": None if ref_audio is None else _b64_clip(ref_audio),
            "ref_text": ref_text,
            "description": description,
            "language": language,
            "defaults": None if defaults is None else dict(defaults),
        }
        body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
        return _Request("POST", "/v1/voices", self._voice, body, idempotent=False)

    def _voice_update(self, name: str, changes: Mapping[str, Any]) -> _Request[Voice]:
        unknown = sorted(set(changes) - _VOICE_CHANGES)
        if unknown:
            raise TypeError(f"a voice's {', '.join(unknown)} cannot be changed")
        body = {k: dict(v) if k == "defaults" and v is not None else v for k, v in changes.items()}
        return _Request("PATCH", _voice_path(name), self._voice, body, idempotent=False)

    def _voice_delete(self, name: str) -> _Request[None]:
        return _Request("DELETE", _voice_path(name), _no_content, idempotent=False)

    def _voice_sample(
        self, name: str, format: str, text: str | None, lang: str | None
    ) -> _Request[Audio]:
        query = {"format": format, "text": text, "lang": lang}
        params = urlencode({k: v for k, v in query.items() if v is not None})
        return _Request("GET", f"{_voice_path(name)}/sample?{params}", self._audio)

    def _voice_export(self) -> _Request[dict[str, Any]]:
        return _Request("GET", "/v1/voices/export", self._export_document)

    def _voice_import(self, document: Mapping[str, Any], overwrite: bool) -> _Request[ImportResult]:
        if not isinstance(document, Mapping):
            raise TypeError("import_() takes an export document: a mapping, as export() returns")
        path = f"/v1/voices/import?overwrite={str(overwrite).lower()}"
        return _Request("POST", path, self._import_result, dict(document), idempotent=False)

    def _voices(self, call: _Call, response: httpx.Response) -> list[Voice]:
        try:
            return [_voice_of(v) for v in response.json()["data"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError(
                f"{call.name}: malformed voice list: {exc}", request_id=call.request_id
            ) from exc

    def _voice(self, call: _Call, response: httpx.Response) -> Voice:
        try:
            return _voice_of(response.json())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError(
                f"{call.name}: malformed voice: {exc}", request_id=call.request_id
            ) from exc

    def _export_document(self, call: _Call, response: httpx.Response) -> dict[str, Any]:
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
                f"{call.name}: the answer is not a voice export document",
                request_id=call.request_id,
            )
        return document

    def _import_result(self, call: _Call, response: httpx.Response) -> ImportResult:
        try:
            body = response.json()
            return ImportResult(
                tuple(str(n) for n in body["imported"]), tuple(str(n) for n in body["skipped"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(
                f"{call.name}: malformed import result: {exc}", request_id=call.request_id
            ) from exc

    def _health(self, call: _Call, response: httpx.Response) -> Health:
        try:
            body = response.json()
            status = body["status"]
        except (ValueError, KeyError, TypeError):
            if response.is_success:
                raise ProtocolError(f"{call.name}: malformed health status") from None
            raise self._status_error(call, response, response.content) from None
        return Health(str(status), response.status_code == 200, body.get("model"))

    # --- fallback ----------------------------------------------------------------------------

    def _fallback_wanted(self, exc: ChatTTSError) -> bool:
        return self._fallback_source is not None and (
            isinstance(exc, CircuitOpenError) or server_fault(exc)
        )

    def _fallback_url(self) -> str | None:
        src = self._fallback_source
        return src if isinstance(src, str) and urlsplit(src).scheme in ("http", "https") else None

    def _fallback_ready(self, exc: ChatTTSError) -> Audio:
        assert self._fallback is not None
        log.warning("returning the fallback audio instead of failing: %s", exc)
        return self._fallback

    def _fallback_failed(self, exc: ChatTTSError, load_error: Exception) -> None:
        log.error("the fallback audio could not be loaded: %s", load_error)
        exc.add_note(f"the fallback audio could not be loaded: {load_error}")

    def _set_fallback(self, data: bytes, name: str, content_type: str | None) -> None:
        ctype = (content_type or "").split(";")[0].strip().lower()
        suffix = PurePosixPath(urlsplit(name).path if self._fallback_url() else name).suffix
        fmt = _CONTENT_TYPES.get(ctype) or _SUFFIXES.get(suffix.lower()) or "wav"
        info = read_info(data) if fmt == "wav" else None
        self._fallback = Audio(
            data, fmt, info.sample_rate if info else None, request_id=None, fallback=True
        )


def _b64_clip(value: Any) -> str:
    if not isinstance(value, bytes | bytearray):
        raise TypeError("ref_audio takes the clip's bytes")
    return base64.b64encode(value).decode("ascii")


def _voice_path(name: str) -> str:
    """``/v1/voices/{name}``, the name percent-encoded, dots included (``..`` must reach the
    server as a name, not become a step up the path)."""
    if not name:
        raise ValueError("a voice name cannot be empty")
    return "/v1/voices/" + quote(name, safe="").replace(".", "%2E")


def _voice_of(v: Mapping[str, Any]) -> Voice:
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


def _no_content(call: _Call, response: httpx.Response) -> None:
    return None


def _error_detail(body: bytes) -> dict[str, Any]:
    try:
        detail = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return detail if isinstance(detail, dict) else {}


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by this server: ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
