"""What every speech router does around the service: JSON check, request record, logging."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from ..errors import UnsupportedMediaError, translate
from ..observe import RequestRecord
from ..speech import Plan, SpeechService
from ..worker import Job

Streamer = Callable[[Job, Plan, RequestRecord, Callable[[], None]], Response]


def require_json(request: Request) -> None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaError(
            f"send the body as application/json, not {ctype or 'nothing'}", param="content-type"
        )


def record(request: Request, route: str, text: str, voice: str | None) -> RequestRecord:
    rid = request.scope["state"]["request_id"]
    return RequestRecord(request_id=rid, route=route, text=text, voice=voice)


async def respond(
    request: Request,
    rec: RequestRecord,
    make_plan: Callable[[], Awaitable[Plan] | Plan],
    streamer: Streamer | None,
) -> Response:
    """Plan, admit and answer one request; the record is logged exactly once, at the end."""
    service: SpeechService = request.app.state.speech
    metrics = request.app.state.metrics
    try:
        plan = make_plan()
        if inspect.isawaitable(plan):
            plan = await plan
        rec.format = rec.format or plan.format.value
        if streamer is None:
            response = await service.full(request, plan, rec)
            rec.finish(metrics)
            return response
        job = await service.worker.submit(plan.request)
    except asyncio.CancelledError:  # the client went away
        rec.status, rec.http_status = "cancelled", 499
        rec.finish(metrics)
        raise
    except BaseException as exc:
        if rec.status == "ok":
            rec.status, rec.http_status = "error", translate(exc).status
        rec.finish(metrics)
        raise
    return streamer(job, plan, rec, lambda: rec.finish(metrics))
