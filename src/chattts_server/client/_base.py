"""What both clients share, without I/O: their configuration, and the life of one call — its
admission through the circuit breakers, its deadline, and the choice to retry, fail over to
another endpoint, or give up."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from ._fallback import Fallback
from ._policy import (
    Call,
    CircuitBreaker,
    Endpoint,
    RetryPolicy,
    Route,
    Timeout,
    base_urls,
    retryable,
)
from ._requests import USER_AGENT, Request, bearer
from ._tls import ssl_context
from .errors import APIStatusError, ChatTTSError, TimeoutError

log = logging.getLogger("chattts_server.client")

DEFAULT_URL = "http://localhost:9700"
SERVER_SAMPLE_RATE = 24000  # the server's rate when a request names none


class BaseClient:
    """Configuration and every I/O-free decision of :class:`Client` and :class:`AsyncClient`.

    Args:
        base_url: The server, e.g. ``http://localhost:9700``; or several, a list or tuple in
            order of preference (``[primary, secondary, …]``), to fail over between: each
            call goes to the first whose circuit breaker admits it, and a failure that would
            be retried moves it at once to the next (see
            :class:`~chattts_server.client._policy.Route`). The servers should share one
            voice library.
        timeout: A :class:`Timeout`, or seconds as a per-call deadline.
        retries: Retries per call (``0``: none), or a :class:`RetryPolicy`.
        breaker_threshold: Consecutive failed calls that open the circuit (``None``: no
            breaker); each endpoint has its own.
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

    Attributes:
        endpoints: The servers, in order of preference, each with its breaker.
        base_url: The first server's URL.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
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
        self.endpoints = tuple(
            Endpoint(
                url,
                None
                if breaker_threshold is None
                else CircuitBreaker(breaker_threshold, breaker_cooldown, clock),
            )
            for url in base_urls(base_url)
        )
        self.base_url = self.endpoints[0].url
        self.timeout = Timeout.of(timeout)
        self.retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries)
        self._fallback = None if fallback is None else Fallback(fallback)
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._auth = bearer(api_key)
        self._ssl = ssl_context(ca, cert, key)
        self._clock = clock
        self._random = random

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The first endpoint's circuit breaker (the only one of a client of one server)."""
        return self.endpoints[0].breaker

    def _http_options(self) -> dict[str, Any]:
        """The arguments of the shell's ``httpx.Client`` or ``httpx.AsyncClient`` (requests
        name their endpoint's URL in full)."""
        options: dict[str, Any] = {
            "headers": self._headers,
            "timeout": httpx.Timeout(self.timeout.read, connect=self.timeout.connect),
        }
        if self._ssl is not None:
            options["verify"] = self._ssl
        return options

    # --- one call: breakers, deadline, retries, failover --------------------------------------

    @contextmanager
    def _call(self, request: Request[Any]) -> Iterator[Call]:
        """Admit a call through the breakers and record its outcome when it ends; an error
        raised from it names the endpoint of its last attempt."""
        deadline = None if self.timeout.total is None else self._clock() + self.timeout.total
        call = Call(
            request.name,
            uuid.uuid4().hex,
            deadline,
            self.retry.max_retries if request.retries else 0,
            Route(self.endpoints, request.guarded),
            request.idempotent,
        )
        call.route.admit()
        try:
            yield call
        except BaseException as exc:
            call.route.end(exc)
            if isinstance(exc, ChatTTSError) and exc.endpoint is None:
                exc.endpoint = call.endpoint
            log.debug(
                "%s at %s failed (request %s, trace %s): %s",
                call.name, call.endpoint, call.request_id, call.trace.trace_id,
                exc.__class__.__name__, extra=_ids(call),
            )  # fmt: skip
            raise
        call.route.end(None)
        log.debug(
            "%s at %s: ok (request %s, trace %s)",
            call.name, call.endpoint, call.request_id, call.trace.trace_id, extra=_ids(call),
        )  # fmt: skip

    def _url(self, call: Call, path: str) -> str:
        """The URL of the next attempt: ``path`` on the endpoint it goes to."""
        return call.route.attempt().url + path

    def _timeout_for(self, call: Call) -> httpx.Timeout:
        """This attempt's httpx timeouts, shortened to the time left before the deadline."""
        connect, read = self.timeout.connect, self.timeout.read
        if call.deadline is not None:
            left = self._time_left(call)
            connect, read = min(connect, left), min(read, left)
        return httpx.Timeout(read, connect=connect)

    def _time_left(self, call: Call) -> float:
        assert call.deadline is not None
        left = call.deadline - self._clock()
        if left <= 0:
            raise TimeoutError(
                f"{call.name}: the {self.timeout.total}s deadline passed",
                request_id=call.request_id,
            )
        return left

    def _check_deadline(self, call: Call) -> None:
        if call.deadline is not None:
            self._time_left(call)

    def _retry_delay(self, call: Call, err: ChatTTSError) -> float | None:
        """Seconds to sleep before the next attempt after ``err`` — ``0`` for a failover to
        the next endpoint, at once — or ``None`` to give up."""
        if not retryable(err, idempotent=call.idempotent):
            return None
        left = call.endpoint
        if (call.deadline is None or self._clock() < call.deadline) and call.route.failover(err):
            log.warning(
                "%s failed at %s (request %s, trace %s): %s; failing over to %s",
                call.name, left, call.request_id, call.trace.trace_id, err, call.endpoint,
                extra=_ids(call),
            )  # fmt: skip
            return 0.0
        if call.retries >= call.max_retries:
            return None
        retry_after = err.retry_after if isinstance(err, APIStatusError) else None
        delay = self.retry.delay(call.retries, retry_after, self._random)
        if call.deadline is not None and self._clock() + delay >= call.deadline:
            log.warning(
                "%s failed at %s (request %s, trace %s): %s; not retrying, the deadline would "
                "pass", call.name, left, call.request_id, call.trace.trace_id, err,
                extra=_ids(call),
            )  # fmt: skip
            return None
        call.retries += 1
        call.route.next_round(err)
        log.warning(
            "%s failed at %s (request %s, trace %s): %s; retry %d/%d in %.2fs",
            call.name, left, call.request_id, call.trace.trace_id, err, call.retries,
            call.max_retries, delay, extra=_ids(call),
        )  # fmt: skip
        return delay


def _ids(call: Call) -> dict[str, str]:
    """A call's log records carry its ids as attributes too (for structured log handlers)."""
    return {
        "request_id": call.request_id,
        "trace_id": call.trace.trace_id,
        "span_id": call.trace.span_id,
    }
