"""The resilience rules, without I/O: time limits, which failures are retried and how long to
wait, the circuit breaker, the endpoints and which one each attempt goes to (:class:`Route`),
and one call's budget (:class:`Call`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ..tracecontext import TraceParent
from ._trace import call_span
from .errors import (
    APIStatusError,
    ChatTTSError,
    CircuitOpenError,
    ConnectError,
    StreamInterruptedError,
    TimeoutError,
    TransportError,
)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REFUSED_STATUSES = frozenset({429, 503})  # refused before any work: safe to repeat anything


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
    nothing of it has been delivered. A 500 is the server's verdict and is not retried, unless
    its body is not the server's error object: then a proxy made it (Ray Serve's, when the
    replica behind it died) and it counts as a 502. A call that changes the voice library
    (create, update, delete, import) is retried only when the server surely did nothing: the
    connection could not be opened (:attr:`TransportError.request_sent` is false), or a 429 or
    503 (refused before any work). After a dropped connection, a read timeout, a 502 or a 504
    the change may or may not have happened: the error is raised, and ``voices.get()`` tells.

    With several endpoints, a failure retried by these rules first moves the call to the
    next endpoint, at once and without counting a retry; the retries and their waits come
    once every endpoint was tried (see :class:`Route`).

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

    A client of several endpoints has one breaker each, and a call that fails over counts
    once against each endpoint it left (see :class:`Route`); an open one is skipped.
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


# --- endpoints: failover between servers -----------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One server of a client, in the client's order of preference.

    Attributes:
        url: Its base URL, without a trailing ``/``.
        breaker: Its own circuit breaker (``None``: the client has no breaker).
    """

    url: str
    breaker: CircuitBreaker | None = field(default=None, compare=False, repr=False)

    @property
    def display(self) -> str:
        """The URL as results, errors and logs name it: a password in it is masked."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def base_urls(base_url: str | Sequence[str]) -> tuple[str, ...]:
    """The servers of ``base_url`` (one URL, or a list or tuple of them in order of
    preference), each without its trailing ``/``.

    Raises:
        ValueError: no URL, an empty one, or one given twice.
        TypeError: neither a string nor a list or tuple of strings.
    """
    urls = (base_url,) if isinstance(base_url, str) else base_url
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise TypeError("base_url takes a URL, or a list or tuple of URLs")
    stripped = tuple(u.strip().rstrip("/") for u in urls)
    if not stripped or not all(stripped):
        raise ValueError("base_url needs at least one URL, and no empty one")
    if len(set(stripped)) != len(stripped):
        raise ValueError("base_url names a server twice")
    return stripped


def record(breaker: CircuitBreaker, trial: bool, exc: BaseException | None) -> None:
    """Give ``breaker`` the verdict of a visit that ended with ``exc`` (``None``: success)."""
    if exc is None or isinstance(exc, GeneratorExit):  # a consumer leaving a healthy stream
        breaker.success()
    elif server_fault(exc):
        breaker.failure()
    elif isinstance(exc, ChatTTSError):  # the server answered: an input error
        breaker.success()
    else:  # cancelled: no verdict
        breaker.release(trial)


class Route:
    """Which endpoint each attempt of one call goes to, and what the endpoints' breakers hear.

    Endpoints are tried in the client's order of preference:

    - A call starts on the first endpoint whose breaker admits it (closed, or half-open with
      no trial in flight); an endpoint whose circuit is open is skipped. When none admits it
      the call raises :class:`CircuitOpenError` without touching the network.
    - A failure that may be retried (:func:`retryable`, the same rule as for a retry) moves
      the call at once to the next endpoint that this round has not tried and that admits
      it: a failover, with no wait and no retry counted (see :meth:`failover`).
    - When no endpoint is left, a retry (counted against ``max_retries``, after the
      backoff) starts a new round on the first endpoint that admits the call again
      (:meth:`next_round`). With one endpoint this is exactly the retry of before.

    Each endpoint's breaker gets one verdict per *visit* — a run of consecutive attempts of
    the call on it: a failure when the call moves off it, the call's outcome when the call
    ends on it. With a single endpoint a breaker therefore counts calls, as
    :class:`CircuitBreaker` says. A call that is not ``guarded`` (health) ignores the
    breakers: it tries every endpoint in order. Not thread-safe: one per call.
    """

    def __init__(self, endpoints: Sequence[Endpoint], guarded: bool = True) -> None:
        self.endpoints = endpoints
        self.guarded = guarded
        self.current: int | None = None  # the endpoint of the visit in progress
        self.trial = False  # that visit is its breaker's half-open trial
        self._tried: set[int] = set()  # this round
        self._round_after: ChatTTSError | None = None  # a new round is due, after this

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint of the visit in progress (``None`` before the call is admitted)."""
        return None if self.current is None else self.endpoints[self.current]

    def admit(self) -> None:
        """Admit the call on the first endpoint that admits it.

        Raises:
            CircuitOpenError: every endpoint's circuit is open; ``retry_in`` is the soonest
                a trial may go.
        """
        refusals = []
        for index in range(len(self.endpoints)):
            refused = self._visit(index, None)
            if refused is None:
                return
            refusals.append(refused)
        if len(refusals) == 1:
            raise refusals[0]
        retry_in = min(r.retry_in for r in refusals)
        raise CircuitOpenError(
            f"the circuits of all {len(refusals)} endpoints are open; "
            f"the first trial may go in {retry_in:.1f}s",
            retry_in=retry_in,
        )

    def attempt(self) -> Endpoint:
        """The endpoint the next attempt goes to (after :meth:`next_round`: the first that
        admits the call, the current one failing that)."""
        assert self.current is not None, "admit() first"
        if self._round_after is not None:
            failed, self._round_after = self._round_after, None
            self._tried.clear()
            for index in range(len(self.endpoints)):
                if self._visit(index, failed) is None:
                    break
        self._tried.add(self.current)
        return self.endpoints[self.current]

    def failover(self, failed: ChatTTSError) -> bool:
        """Move to the next endpoint, in order, that this round has not tried and whose
        breaker admits the call, after the retryable failure ``failed``; False when there
        is none (the call stays where it is)."""
        return any(
            self._visit(index, failed) is None
            for index in range(len(self.endpoints))
            if index not in self._tried
        )

    def next_round(self, failed: ChatTTSError) -> None:
        """Start a new round of endpoints at the next :meth:`attempt` (a retry)."""
        self._round_after = failed

    def end(self, exc: BaseException | None) -> None:
        """The call ended, with ``exc`` (``None``: success): the verdict of its last visit."""
        endpoint = self.endpoint
        if self.guarded and endpoint is not None and endpoint.breaker is not None:
            record(endpoint.breaker, self.trial, exc)

    def _visit(self, index: int, failed: ChatTTSError | None) -> CircuitOpenError | None:
        """Move the call to endpoint ``index`` if its breaker admits it (the current one
        always does), giving the one left its verdict: ``failed``. The refusal, if not."""
        if index == self.current:
            return None
        trial = False
        breaker = self.endpoints[index].breaker
        if self.guarded and breaker is not None:
            try:
                trial = breaker.acquire()
            except CircuitOpenError as refused:
                return refused
        left = self.endpoint
        if self.guarded and left is not None and left.breaker is not None:
            record(left.breaker, self.trial, failed)
        self.current, self.trial = index, trial
        return None


# --- one call --------------------------------------------------------------------------------


@dataclass
class Call:
    """One call, across its attempts: its name, ``X-Request-ID`` and W3C trace span (sent as
    ``traceparent``; for errors and logs), its budget (deadline, retries) and its
    :class:`Route` between endpoints."""

    name: str
    request_id: str
    deadline: float | None
    max_retries: int
    route: Route
    idempotent: bool = True  # False: changes something, so repeated only if surely not done
    retries: int = 0
    trace: TraceParent = field(default_factory=call_span)

    @property
    def endpoint(self) -> str | None:
        """The endpoint of the current attempt, as results and errors name it."""
        endpoint = self.route.endpoint
        return None if endpoint is None else endpoint.display


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
        if idempotent and exc.status == 500 and not exc.from_server:
            return True  # a gateway's 500 (the server behind it died): as a 502
        return exc.status in (RETRY_STATUSES if idempotent else REFUSED_STATUSES)
    if not idempotent:
        return isinstance(exc, TransportError) and not exc.request_sent
    return isinstance(exc, ConnectError | TimeoutError | StreamInterruptedError)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by this server: ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
