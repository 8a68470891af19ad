"""Observability: Prometheus metrics, JSON logs, the one log line each request ends with, and
the request's span in its W3C trace (``traceparent``, rules in :mod:`chattts_server.tracecontext`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .. import tracecontext
from ..engine import SynthesisCancelledError
from ..tracecontext import TraceParent
from .errors import translate

log = logging.getLogger("chattts_server.request")


@dataclass(frozen=True)
class RequestSpan:
    """The server's span of one HTTP request: ``span`` (returned to the caller as
    ``traceparent``) in the caller's trace, or in a new one when the caller sent no valid
    ``traceparent`` (``parent`` is then ``None``)."""

    span: TraceParent
    parent: TraceParent | None

    @classmethod
    def from_headers(cls, values: Iterable[bytes]) -> RequestSpan:
        """The span for a request's ``traceparent`` header values (several: invalid)."""
        given = [v.decode("latin-1") for v in values]
        span, parent = tracecontext.continue_from(",".join(given) if given else None)
        return cls(span, parent)

    @property
    def trace_id(self) -> str:
        return self.span.trace_id

    def fields(self) -> dict[str, str | None]:
        """What log lines say of it."""
        return {
            "trace_id": self.span.trace_id,
            "span_id": self.span.span_id,
            "parent_span_id": self.parent.span_id if self.parent else None,
        }


# the span of the request being handled (set by the RequestID middleware; tasks and
# to_thread calls made while handling it inherit it, plain threads do not)
current_span: ContextVar[RequestSpan | None] = ContextVar("chattts_request_span", default=None)


class Metrics:
    """The server's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "chattts_requests", "HTTP requests by route and status", ["route", "status"],
            registry=r,
        )  # fmt: skip
        self.ttfa = Histogram(
            "chattts_time_to_first_audio_seconds",
            "time from request to first audio",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.rtf = Histogram(
            "chattts_real_time_factor",
            "synthesis wall time / audio duration",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
            registry=r,
        )
        self.queue_depth = Gauge("chattts_queue_depth", "requests waiting", registry=r)
        self.in_flight = Gauge("chattts_in_flight", "requests synthesizing", registry=r)
        # read when scraped (exposition): what the alerts compare the gauges above with
        self.ready = Gauge(
            "chattts_ready", "1 once the model is loaded and warmed up (/readyz 200)", registry=r
        )
        self.queue_limit = Gauge(
            "chattts_queue_limit", "most requests that may wait (max_queue; more: 503)", registry=r
        )
        self.in_flight_limit = Gauge(
            "chattts_in_flight_limit", "most requests synthesizing at once (max_batch)", registry=r
        )
        self.audio_seconds = Counter(
            "chattts_audio_seconds", "seconds of audio produced", registry=r
        )
        self.gpt_batch_rows = Histogram(
            "chattts_gpt_batch_rows",
            "requests sharing each GPT step (continuous batching)",
            buckets=(1, 2, 3, 4, 6, 8, 16, 32, 64),
            registry=r,
        )
        self.gpt_step_seconds = Histogram(
            "chattts_gpt_step_seconds",
            "wall time of one batched GPT step (prefills included)",
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
            registry=r,
        )

    def exposition(self, *, ready: bool, queue_limit: int, in_flight_limit: int) -> bytes:
        """The Prometheus text of ``/metrics``, with the gauges read at scrape time set."""
        self.ready.set(1 if ready else 0)
        self.queue_limit.set(queue_limit)
        self.in_flight_limit.set(in_flight_limit)
        return generate_latest(self.registry)

    def observe_step(self, rows: int, seconds: float) -> None:
        """A batcher listener (runs on the batcher thread; prometheus_client is thread-safe)."""
        self.gpt_batch_rows.observe(rows)
        self.gpt_step_seconds.observe(seconds)


@dataclass
class RequestRecord:
    """What the final log line of one synthesis request says, and the one place it ends.

    The outcome is the first one told (``cancelled()``, ``failed(exc)``; ``ok`` if none);
    ``done()`` runs the request's clean-ups (``on_end``), writes the metrics and the log line,
    once, however often it is called. :meth:`lifetime` wraps a request's handling: it records
    an exception's outcome and ends the record on the way out — unless a streaming response
    took the record over (:meth:`hand_over`), which ends it when its body closes.
    """

    request_id: str
    route: str
    metrics: Metrics
    text: str = ""
    # the request's span: the one of the context the record is made in (the request's)
    trace: RequestSpan | None = field(default_factory=lambda: current_span.get())
    voice: str | None = None
    format: str | None = None
    stream: bool = False
    started: float = field(default_factory=time.perf_counter)
    first_audio: float | None = None
    audio_seconds: float = 0.0
    status: str = "ok"
    http_status: int = 200
    _cleanups: list[Callable[[], object]] = field(default_factory=list, repr=False)
    _ended: bool = False
    _handed_over: bool = False

    def cancelled(self) -> None:
        """The client went away (or stopped reading): 499."""
        if self.status == "ok":
            self.status, self.http_status = "cancelled", 499

    def failed(self, exc: BaseException) -> None:
        """The request failed with ``exc`` (its HTTP status as the client sees it)."""
        if isinstance(exc, SynthesisCancelledError):
            self.cancelled()
        elif self.status == "ok":
            self.status, self.http_status = "error", translate(exc).status

    def on_end(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` when the record ends (last added, first run)."""
        self._cleanups.append(cleanup)

    @asynccontextmanager
    async def lifetime(self) -> AsyncIterator[RequestRecord]:
        try:
            yield self
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled()
            raise
        except BaseException as exc:
            self.failed(exc)
            raise
        finally:
            if not self._handed_over:
                self.done()

    def hand_over(self) -> Callable[[bool], None]:
        """A streaming response takes the record over: it calls the returned function once
        its body is closed (``completed``: the body ran to its end)."""
        self._handed_over = True

        def close(completed: bool) -> None:
            if not completed:
                self.cancelled()
            self.done()

        return close

    def audio_started(self) -> None:
        if self.first_audio is None:
            self.first_audio = time.perf_counter()

    @property
    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    @property
    def ttfa_ms(self) -> int | None:
        if self.first_audio is None:
            return None
        return round((self.first_audio - self.started) * 1000)

    def done(self) -> None:
        if self._ended:
            return
        self._ended = True
        for cleanup in reversed(self._cleanups):
            cleanup()
        metrics = self.metrics
        elapsed = time.perf_counter() - self.started
        rtf = elapsed / self.audio_seconds if self.audio_seconds else None
        metrics.requests.labels(self.route, str(self.http_status)).inc()
        if self.audio_seconds:
            metrics.audio_seconds.inc(self.audio_seconds)
            if rtf is not None and self.status == "ok":
                metrics.rtf.observe(rtf)
        if self.first_audio is not None:
            metrics.ttfa.observe(self.first_audio - self.started)
        log.info(
            "request done",
            extra={
                "fields": {
                    "request_id": self.request_id,
                    **(self.trace.fields() if self.trace else {}),
                    "route": self.route,
                    "text_hash": hashlib.sha256(
                        self.text.encode("utf-8", "surrogatepass")
                    ).hexdigest()[:16],
                    "chars": len(self.text),
                    "voice": self.voice,
                    "format": self.format,
                    "stream": self.stream,
                    "status": self.status,
                    "http_status": self.http_status,
                    "audio_duration_ms": round(self.audio_seconds * 1000),
                    "time_to_first_audio_ms": self.ttfa_ms,
                    "elapsed_ms": round(elapsed * 1000),
                    "rtf": round(rtf, 3) if rtf is not None else None,
                }
            },
        )


class RedactQuery(logging.Filter):
    """Access-log lines never show what a URL carries: ``token=`` (a stand-in for an API key)
    and ``text=`` (what the user wants spoken; request log lines have its hash)."""

    _SECRET = re.compile(r"((?:^|[?&])(?:token|text)=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._SECRET.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        record.msg = self._SECRET.sub(r"\1[redacted]", str(record.msg))
        return True


def redact_access_log() -> None:
    """Install :class:`RedactQuery` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra["fields"]``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if "trace_id" not in out and (span := current_span.get()) is not None:
            out["trace_id"] = span.trace_id  # any line logged while handling a request
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
