"""``POST /v1/tts``: the native endpoint (whole file, chunked audio, or Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...audio import wants_event_stream
from ..errors import URITooLongError
from ..openapi import AUDIO_TYPES, TIMEOUT_HEADER, errors
from ..protocol import TTSQuery, TTSRequest
from ..speech import SpeechService
from .common import record, require_json, respond

router = APIRouter(tags=["speech"])


@router.post(
    "/v1/tts",
    dependencies=[Depends(require_json)],
    response_class=Response,
    responses={
        **errors(400, 401, 404, 406, 413, 415, 429, 500, 503, 504),
        200: {
            "description": "the whole file (stream=false); with stream=true, Server-Sent Events "
            "unless the request asks for audio (a format, or an Accept naming an audio type), "
            "then chunked audio",
            "content": {t: {} for t in [*AUDIO_TYPES, "text/event-stream"]},
        },
    },
    openapi_extra={"parameters": [TIMEOUT_HEADER]},
)
async def tts(
    request: Request,
    body: TTSRequest,
    stream: bool | None = Query(None, description="same as the body's stream"),
) -> Response:
    """Synthesize ``text``. ``stream`` (body or query) sends audio as it is made: Server-Sent
    Events, or chunked audio when the client asks for audio by ``format`` or ``Accept``."""
    service: SpeechService = request.app.state.speech
    voice = body.voice_name or (f"seed:{body.seed}" if body.seed is not None else None)
    rec = record(request, "/v1/tts", body.text, voice)
    accept = request.headers.get("accept")
    rec.stream = body.stream or bool(stream)
    sse = rec.stream and wants_event_stream(accept, body.format)
    if sse:
        rec.format = "sse"
    streamer = None
    if rec.stream:
        streamer = service.sse_native if sse else service.chunked
    return await respond(request, rec, lambda: service.plan_tts(body, accept, sse), streamer)


def url_within_limit(request: Request) -> None:
    """Before the query is parsed: a URL over ``max_url_bytes`` is 414, whatever it holds."""
    limit: int = request.app.state.settings.max_url_bytes
    size = len(request.scope["raw_path"]) + 1 + len(request.scope["query_string"])
    if size > limit:
        raise URITooLongError(
            f"the URL has {size} bytes; the limit is {limit}: send long text with POST /v1/tts",
            param="text",
        )


@router.get(
    "/v1/tts/stream",
    dependencies=[Depends(url_within_limit)],
    response_class=Response,
    responses={
        **errors(400, 401, 404, 414, 429, 500, 503, 504),
        200: {
            "description": "Server-Sent Events, as POST /v1/tts with stream=true",
            "content": {"text/event-stream": {}},
        },
    },
    openapi_extra={"parameters": [TIMEOUT_HEADER]},
)
async def tts_stream(request: Request, query: Annotated[TTSQuery, Query()]) -> Response:
    """``POST /v1/tts`` with ``stream=true`` for an ``EventSource`` (which can only GET and
    cannot send headers): the fields that fit a query string, the same events, validation and
    cancellation. With API keys on, authenticate with ``?token=`` from
    ``POST /v1/stream-tokens``. URLs over ``max_url_bytes`` are 414: send long text by POST."""
    service: SpeechService = request.app.state.speech
    body = query.request()
    rec = record(request, "/v1/tts/stream", body.text, body.voice_name)
    rec.stream, rec.format = True, "sse"
    return await respond(
        request, rec, lambda: service.plan_tts(body, None, True), service.sse_native
    )
