"""The resilience rules, without I/O: time limits, which failures are retried and how long to
wait, the circuit breaker, and one call's budget (:class:`Call`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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
class Call:
    """One call, across its attempts: its name and ``X-Request-ID`` (for errors and logs) and
    its budget (deadline, retries)."""

    name: str
    request_id: str
    deadline: float | None
    max_retries: int
    guarded: bool  # counted by the breaker
    idempotent: bool = True  # False: changes something, so repeated only if surely not done
    trial: bool = False
    retries: int = 0


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


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by this server: ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
