"""What every speech router does around the service: JSON check, request record, logging."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace

from fastapi import Request
from fastapi.responses import Response

from ..errors import BadRequestError, RateLimitedError, UnsupportedMediaError
from ..observe import RequestRecord
from ..security import client_id
from ..speech import Plan, SpeechService, cancel_on_disconnect
from ..worker import Job

Streamer = Callable[[Job, Plan, RequestRecord], Awaitable[Response]]


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaError(
            f"send the body as application/json, not {ctype or 'nothing'}", param="content-type"
        )


def record(request: Request, route: str, text: str, voice: str | None) -> RequestRecord:
    rid = request.scope["state"]["request_id"]
    metrics = request.app.state.metrics
    return RequestRecord(request_id=rid, route=route, metrics=metrics, text=text, voice=voice)


async def respond(
    request: Request,
    rec: RequestRecord,
    make_plan: Callable[[], Awaitable[Plan] | Plan],
    streamer: Streamer | None,
) -> Response:
    """Plan, admit and answer one request. The record ends once, whatever the path: here for
    a whole file or a failure before any response, or when a streamed response's body closes."""
    service: SpeechService = request.app.state.speech
    async with rec.lifetime():
        timeout = _deadline(request)
        plan = make_plan()
        if inspect.isawaitable(plan):
            plan = await plan
        rec.format = rec.format or plan.format.value
        if streamer is None:
            return await service.full(request, plan, rec, timeout)
        rec.on_end(_take_stream_slot(request))
        plan = replace(plan, request=replace(plan.request, incremental=True))
        job = await service.worker.admit(plan.request, timeout)
        rec.on_end(job.cancel)  # ending a request stops its synthesis (a no-op once finished)
        # a streamer may wait for the first audio before answering: cancel if the client goes
        watcher = asyncio.create_task(cancel_on_disconnect(request, job))
        try:
            return await streamer(job, plan, rec)
        finally:
            watcher.cancel()


def _no_op() -> None:
    pass


def _deadline(request: Request) -> float:
    """``X-Request-Timeout`` (seconds), at most the server's ``request_timeout_s``."""
    limit: float = request.app.state.settings.request_timeout_s
    raw = request.headers.get("x-request-timeout")
    if raw is None:
        return limit
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= limit:  # NaN fails too
        raise BadRequestError(
            f"X-Request-Timeout must be seconds in (0, {limit:g}]",
            code="out_of_range",
            param="X-Request-Timeout",
        )
    return value


def _take_stream_slot(request: Request) -> Callable[[], None]:
    """Count one open stream for the caller; 429 beyond ``max_streams_per_key``."""
    limit: int = request.app.state.settings.max_streams_per_key
    if not limit:
        return _no_op
    streams: dict[str, int] = request.app.state.streams
    who = client_id(request.scope)
    if streams.get(who, 0) >= limit:
        raise RateLimitedError(
            f"at most {limit} concurrent streams per key",
            code="too_many_streams",
            headers={"Retry-After": "1"},
        )
    streams[who] = streams.get(who, 0) + 1
    done = False

    def release() -> None:
        nonlocal done
        if not done:
            done = True
            streams[who] -= 1

    return release
