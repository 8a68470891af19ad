"""``POST /v1/tts``: the native endpoint (whole file, chunked audio, or Server-Sent Events)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...audio import wants_event_stream
from ..openapi import AUDIO_TYPES, TIMEOUT_HEADER, errors
from ..protocol import TTSRequest
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
