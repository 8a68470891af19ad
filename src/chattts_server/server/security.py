"""Who may call, how often, and how long a send may block: pure ASGI middleware.

- :class:`APIKeyAuth`: ``Authorization: Bearer <key>`` checked against the configured keys by
  comparing sha256 digests in constant time; keys are never logged (only a digest prefix, the
  ``client_id``). ``/healthz``, ``/readyz`` and the page ``/`` stay open; ``/metrics`` is
  configurable. ``GET /v1/tts/stream`` (EventSource, which cannot send headers) also takes a
  short-lived stream token as ``?token=``.
- :class:`StreamTokens`: mints those tokens (``POST /v1/stream-tokens``) and checks them. A
  token is ``<payload>.<signature>``: the key's ``client_id`` and an expiry, signed with HMAC
  (the server's secret), so it carries the key's rate and stream limits and never the key;
  expired → 401 ``token_expired``. Tokens are redacted from the access log.
- :class:`RateLimit`: a token bucket per client (key, or address when auth is off) on ``/v1/``
  routes: 429 + ``Retry-After``.
- :class:`SendTimeout`: a client that stops reading for ``timeout`` seconds is cut off, so a stuck
  client pins neither memory nor the worker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError, RateLimitedError, UnauthorizedError

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
TOKEN_PATHS = frozenset({"/v1/tts/stream"})  # where ?token= is accepted (GET only)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


async def _reject(scope: Scope, receive: Receive, send: Send, err: APIError) -> None:
    rid = scope.get("state", {}).get("request_id")
    await JSONResponse(err.body(rid), err.status, headers=err.headers)(scope, receive, send)


def client_id(scope: Scope) -> str:
    """The caller's identity for limits: its key's digest prefix, else its address."""
    state = scope.get("state", {})
    if "client_id" in state:
        return str(state["client_id"])
    client = scope.get("client")
    return f"addr:{client[0]}" if client else "addr:unknown"


class StreamTokens:
    """Short-lived, signed stand-ins for an API key, for clients that cannot send headers."""

    def __init__(
        self, ttl_s: float, secret: bytes | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl_s = ttl_s
        self._secret = secret or secrets.token_bytes(32)
        self.clock = clock

    def mint(self, client: str) -> tuple[str, float]:
        """A token for ``client`` and when it expires (Unix time)."""
        expires = self.clock() + self.ttl_s
        payload = _b64(json.dumps({"c": client, "e": round(expires, 3)}).encode())
        return f"{payload}.{self._sign(payload)}", expires

    def verify(self, token: str) -> str:
        """The ``client_id`` a token stands for; raises :class:`UnauthorizedError`."""
        payload, _, signature = token.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise UnauthorizedError("the stream token is not valid", code="invalid_token")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if self.clock() >= float(claims["e"]):
            raise UnauthorizedError(
                "the stream token expired: get a new one from POST /v1/stream-tokens",
                code="token_expired",
            )
        return str(claims["c"])

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def query_token(scope: Scope) -> str | None:
    """``?token=`` of a request, where tokens are accepted."""
    if scope["method"] != "GET" or scope["path"] not in TOKEN_PATHS:
        return None
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[-1] if values else None


class APIKeyAuth:
    def __init__(
        self, app: ASGIApp, keys: list[str], protect_metrics: bool, tokens: StreamTokens
    ) -> None:
        self.app = app
        self._digests = [_digest(k) for k in keys]
        self._open = OPEN_PATHS if protect_metrics else OPEN_PATHS | {"/metrics"}
        self.tokens = tokens

    def identify(self, presented: str) -> str | None:
        given = _digest(presented)
        match = None
        for digest in self._digests:  # no early exit: the time does not depend on which key
            if hmac.compare_digest(given, digest):
                match = digest
        return f"key:{match.hex()[:12]}" if match is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        stream_token = query_token(scope) if not header else None
        if stream_token is not None:
            try:
                scope.setdefault("state", {})["client_id"] = self.tokens.verify(stream_token)
            except UnauthorizedError as exc:
                err = exc
            except (ValueError, KeyError, TypeError):  # not even shaped like a token
                err = UnauthorizedError("the stream token is not valid", code="invalid_token")
            else:
                await self.app(scope, receive, send)
                return
        elif scheme.lower() != "bearer" or not token.strip():
            err = UnauthorizedError("send Authorization: Bearer <API key>", code="missing_api_key")
        elif (cid := self.identify(token.strip())) is None:
            err = UnauthorizedError("the API key is not valid", code="invalid_api_key")
        else:
            scope.setdefault("state", {})["client_id"] = cid
            await self.app(scope, receive, send)
            return
        err.headers["WWW-Authenticate"] = "Bearer"
        await _reject(scope, receive, send, err)


class RateLimit:
    def __init__(
        self, app: ASGIApp, per_minute: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client → (tokens, last time)

    def take(self, client: str) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = self.clock()
        tokens, last = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            wait = self.take(client_id(scope))
            if wait:
                err = RateLimitedError(
                    f"rate limit of {round(self.capacity)} requests per minute",
                    headers={"Retry-After": str(math.ceil(wait))},
                )
                await _reject(scope, receive, send, err)
                return
        await self.app(scope, receive, send)


class SendTimeout:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        stalled = False

        async def timed_send(message: Message) -> None:
            nonlocal stalled
            try:
                await asyncio.wait_for(send(message), self.timeout)
            except TimeoutError:
                stalled = True
                raise

        try:
            await self.app(scope, receive, timed_send)
        except TimeoutError:
            if not stalled:
                raise
            log.warning("client stopped reading for %.0fs: connection cut", self.timeout)
