"""The app factory: services built once at start-up and kept on ``app.state``.

``create_app(settings, engine=None)`` returns the FastAPI app. The engine loads in the background
(``/healthz`` answers at once, ``/readyz`` is 503 until the model is loaded and warmed).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..audio import AudioError
from ..engine import Engine, EngineError, create_engine
from ..settings import Settings
from .errors import (
    APIError,
    BadRequestError,
    InternalError,
    NotFoundError,
    PayloadTooLargeError,
    translate,
    validation_error,
)
from .observe import Metrics, RequestSpan, current_span, redact_access_log
from .openapi import build_openapi
from .routers import browser, openai, system, tts, voices
from .security import APIKeyAuth, RateLimit, SendTimeout, StreamTokens
from .speech import SpeechService
from .voices import VoiceLibrary
from .voicestore import StoreUnavailableError, VoiceStore, VoiceStoreError, open_store
from .worker import SynthesisWorker

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    store: VoiceStore | None = None,
) -> FastAPI:
    """Build the app. ``engine`` defaults to the engine ``settings`` name (PyTorch or ONNX);
    ``on_fatal`` is called if the model fails to load (``serve`` stops the server); ``store``
    (the app closes it) defaults to the one ``settings`` name (:func:`open_store`: raises
    :class:`VoiceStoreError` with advice when it cannot be opened)."""
    settings = settings or Settings()
    engine = engine or create_engine(settings.engine_config())
    metrics = Metrics()
    if store is None:
        store = open_store(settings.database_url, settings.data_dir)
    worker = SynthesisWorker(
        engine,
        metrics,
        max_queue=settings.max_queue,
        send_timeout=settings.send_timeout_s,
        concurrency=settings.max_batch,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = None
        if engine.ready:
            _watch_steps(engine, metrics)
        else:
            loader = asyncio.create_task(_load(app, engine, on_fatal))
        yield
        if loader is not None:
            loader.cancel()
        _watch_steps(engine, metrics, stop=True)
        worker.shutdown()
        store.close()

    app = FastAPI(
        title="chattts-server",
        version="0.1.0",
        summary="ChatTTS over HTTP: native /v1/tts and OpenAI-compatible /v1/audio/speech",
        lifespan=lifespan,
        redirect_slashes=False,  # an API answers, it does not redirect
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.worker = worker
    app.state.load_error = None
    app.state.voices = VoiceLibrary(store, engine)
    app.state.speech = SpeechService(
        worker,
        app.state.voices,
        metrics,
        keepalive_s=settings.keepalive_s,
        sample_rate=engine.info.sample_rate,
    )
    app.include_router(tts.router)
    app.include_router(openai.router)
    app.include_router(voices.router)
    app.include_router(system.router)
    app.include_router(browser.router)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    app.state.streams = {}
    secret = settings.stream_token_secret
    app.state.stream_tokens = StreamTokens(
        settings.stream_token_ttl_s, secret.encode() if secret else None
    )
    redact_access_log()
    # outermost last: RequestID → CORS → SendTimeout → BodyLimit → APIKeyAuth → RateLimit → app
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    keys = settings.load_api_keys()
    if keys:
        app.add_middleware(
            APIKeyAuth,
            keys=keys,
            protect_metrics=settings.metrics_require_key,
            tokens=app.state.stream_tokens,
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SendTimeout, timeout=settings.send_timeout_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID", "X-Ignored-Fields", "X-Voice-Warning", "X-Sample-Rate",
                "Retry-After", "traceparent",
            ],
        )  # fmt: skip
    app.add_middleware(RequestID)
    return app


async def _load(
    app: FastAPI, engine: Engine, on_fatal: Callable[[BaseException], None] | None
) -> None:
    try:
        await asyncio.to_thread(engine.load)
        _watch_steps(engine, app.state.metrics)
    except Exception as exc:
        app.state.load_error = str(exc)
        log.error("model failed to load: %s", exc)
        if on_fatal is not None:
            on_fatal(exc)


def _watch_steps(engine: Engine, metrics: Metrics, stop: bool = False) -> None:
    """Feed the engine's batched GPT steps into the metrics; ``stop`` detaches."""
    if stop:
        engine.remove_step_listener(metrics.observe_step)
    else:
        engine.add_step_listener(metrics.observe_step)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _install_error_handlers(app: FastAPI) -> None:
    def respond(request: Request, err: APIError) -> JSONResponse:
        # X-Request-ID and traceparent here too: the handler of unhandled errors runs outside
        # the RequestID middleware
        rid = request_id(request)
        headers = {**err.headers, "X-Request-ID": rid}
        span = request.scope.get("state", {}).get("trace")
        if span is not None:
            headers["traceparent"] = span.span.header()
        return JSONResponse(err.body(rid), err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return respond(request, validation_error(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        err: APIError
        if exc.status_code == 404:
            err = NotFoundError(f"no route {request.url.path}", code="route_not_found")
        elif exc.status_code == 413:
            err = PayloadTooLargeError(str(exc.detail))
        elif exc.status_code == 405:
            allow = _allowed_methods(request)
            err = BadRequestError(
                f"{request.method} is not allowed here; allowed: {allow}",
                code="method_not_allowed",
                headers={"Allow": allow},
            )
            err.status = 405
        elif exc.status_code == 400:  # FastAPI could not parse the body (e.g. invalid UTF-8)
            err = BadRequestError(f"unreadable body: {exc.detail}", code="invalid_json")
        elif exc.status_code < 500:
            err = BadRequestError(str(exc.detail), code="bad_request")
            err.status = exc.status_code
        else:
            err = InternalError("internal error")
        return respond(request, err)

    @app.exception_handler(APIError)
    @app.exception_handler(EngineError)
    @app.exception_handler(AudioError)
    @app.exception_handler(VoiceStoreError)
    async def on_known(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StoreUnavailableError):
            log.error("request %s: %s", request_id(request), exc)  # redacted, not in the answer
        return respond(request, translate(exc))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error (request %s)", request_id(request), exc_info=exc)
        return respond(request, InternalError("internal error"))


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110: a 405 carries ``Allow``), found
    by asking the routes, as the router itself would."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


class RequestID:
    """Takes ``X-Request-ID`` when it is well-formed (else makes one) and echoes it back; makes
    the request's span in the caller's W3C trace (``traceparent``; a new trace when it is
    missing or invalid), current while the request is handled (``observe.current_span``: the
    request's log line names its trace), and returns the span as ``traceparent``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        span = RequestSpan.from_headers(v for k, v in scope["headers"] if k == b"traceparent")
        state = scope.setdefault("state", {})
        state["request_id"], state["trace"] = rid, span
        ours = [(b"x-request-id", rid.encode()), (b"traceparent", span.span.header().encode())]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {k.lower() for k, _ in headers}
                message["headers"] = [*headers, *(h for h in ours if h[0] not in names)]
            await send(message)

        token = current_span.set(span)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_span.reset(token)


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            err = PayloadTooLargeError(f"body exceeds {self.max_bytes} bytes")
            rid = scope.get("state", {}).get("request_id")
            await JSONResponse(err.body(rid), 413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)
