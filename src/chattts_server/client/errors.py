"""Every error the SDK raises::

    ChatTTSError                      (message, status, code, param, request_id, endpoint)
    ├── TransportError                no HTTP answer (``request_sent``: may it have arrived?)
    │   ├── ConnectError              could not connect, or the connection dropped
    │   └── TimeoutError              connect / read timeout, or the call's deadline
    ├── APIStatusError                the server answered with an error status (+ type)
    │   ├── BadRequestError           400 (also 405)
    │   ├── AuthenticationError       401 — API key missing or not valid
    │   ├── NotFoundError             404 — unknown voice or route
    │   ├── NotAcceptableError        406
    │   ├── ConflictError             409 — the voice name is taken (``voice_exists``)
    │   ├── PayloadTooLargeError      413
    │   ├── UnsupportedMediaTypeError 415
    │   ├── RateLimitError            429 (retried)
    │   ├── InternalServerError       500 and any other 5xx without a class of its own
    │   └── ServiceUnavailableError   503 (retried; ``retry_after``)
    ├── CircuitOpenError              failing fast: the server failed too often lately
    ├── ProtocolError                 the answer does not follow the protocol
    ├── StreamInterruptedError        a stream ended early, after audio was delivered
    └── StreamError                   the server sent ``event: error`` mid-stream

``status``, ``code`` and ``param`` are ``None`` where they do not apply; ``request_id`` is the id
the server logged (the one the client sent in ``X-Request-ID``); ``endpoint`` is the server the
call's last attempt went to (the client's base URL of it; ``None`` when no attempt was made).
"""

from __future__ import annotations

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ChatTTSError",
    "CircuitOpenError",
    "ConflictError",
    "ConnectError",
    "InternalServerError",
    "NotAcceptableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ProtocolError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamInterruptedError",
    "TimeoutError",
    "TransportError",
    "UnsupportedMediaTypeError",
]


class ChatTTSError(Exception):
    """Base of every SDK error.

    Attributes:
        endpoint: The base URL of the server the call's last attempt went to (a password in
            it masked), set by the client; ``None`` when no attempt was made.
    """

    endpoint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.request_id = request_id

    def __str__(self) -> str:
        details = [f"{k}={v}" for k, v in (("code", self.code), ("param", self.param)) if v]
        if self.status is not None:
            details.insert(0, f"status={self.status}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class TransportError(ChatTTSError):
    """No HTTP answer came back.

    Attributes:
        request_sent: False when the request surely never reached the server (the connection
            could not be opened), so even a call that changes something is safe to repeat.
    """

    def __init__(
        self, message: str, *, request_sent: bool = True, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.request_sent = request_sent


class ConnectError(TransportError):
    """Connecting failed, or the server closed the connection before answering."""


class TimeoutError(TransportError):  # shadows the builtin inside this package, as httpx does
    """A connect or read timeout, or the call's total deadline, passed."""


class APIStatusError(ChatTTSError):
    """The server answered with an error status.

    Attributes:
        type: The error body's ``type`` (``invalid_request_error``, ``overloaded_error``, …).
        retry_after: The ``Retry-After`` header in seconds, when the server sent one.
        from_server: The body is chattts-server's error object; False for a page a proxy or
            gateway made (Ray Serve's proxy answers a replica's death with a bare 500).
    """

    status: int

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        from_server: bool = True,
    ) -> None:
        super().__init__(message, status=status, code=code, param=param, request_id=request_id)
        self.type = type
        self.retry_after = retry_after
        self.from_server = from_server


class BadRequestError(APIStatusError):
    """400: the request is invalid; ``param`` names the field."""


class AuthenticationError(APIStatusError):
    """401: the server wants an API key (``code="missing_api_key"``) or does not know the one
    sent (``code="invalid_api_key"``). Not retried."""


class NotFoundError(APIStatusError):
    """404: an unknown voice (``code="voice_not_found"``) or route."""


class NotAcceptableError(APIStatusError):
    """406: no audio format the request accepts."""


class ConflictError(APIStatusError):
    """409: the name is taken — by a saved voice or a built-in one (``code="voice_exists"``)."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body is too large (a long reference clip, say)."""


class UnsupportedMediaTypeError(APIStatusError):
    """415."""


class RateLimitError(APIStatusError):
    """429: retried, honouring ``retry_after``."""


class InternalServerError(APIStatusError):
    """500 (synthesis failed) or another 5xx. Not retried — except a 500 that is not the
    server's own (``from_server`` false: a proxy's, e.g. when the replica behind it died),
    which is retried like a 502."""


class ServiceUnavailableError(APIStatusError):
    """503: overloaded or the model is still loading; retried, honouring ``retry_after``."""


class CircuitOpenError(ChatTTSError):
    """Raised without calling the server while the circuit breaker is open.

    Attributes:
        retry_in: Seconds until the breaker lets a trial request through.
    """

    def __init__(self, message: str, *, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


class ProtocolError(ChatTTSError):
    """The server's answer does not follow the protocol (content type, event payload)."""


class _StreamEnded(ChatTTSError):
    def __init__(
        self,
        message: str,
        *,
        bytes_received: int,
        chunks_received: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, request_id=request_id)
        self.type = type
        self.bytes_received = bytes_received
        self.chunks_received = chunks_received


class StreamInterruptedError(_StreamEnded):
    """A stream stopped before its ``done`` event: the audio received is truncated.

    Never retried once audio was delivered (a retry would repeat it). ``__cause__`` holds the
    transport error, if one caused it.

    Attributes:
        bytes_received: PCM bytes delivered before the cut.
        chunks_received: Audio chunks delivered before the cut.
    """


class StreamError(_StreamEnded):
    """The server reported a failure mid-stream (``event: error``); ``type``, ``code`` and
    ``param`` are from its error body. Carries ``bytes_received`` and ``chunks_received`` too."""


_FOR_STATUS: dict[int, type[APIStatusError]] = {
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


def for_status(status: int) -> type[APIStatusError]:
    """The error class of an HTTP error ``status``, as the tree above shows."""
    return _FOR_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
