"""``POST /v1/tts``: the native endpoint (whole file, chunked audio, or Server-Sent Events)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..errors import ERROR_RESPONSES
from ..protocol import TTSRequest
from ..speech import SpeechService
from .common import record, require_json, respond

router = APIRouter(tags=["speech"])

AUDIO_TYPES = ["audio/wav", "audio/mpeg", "audio/ogg", "audio/aac", "audio/flac", "audio/pcm"]


@router.post(
    "/v1/tts",
    dependencies=[Depends(require_json)],
    response_class=Response,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "audio (whole or chunked), or text/event-stream when streaming with "
            "Accept: text/event-stream",
            "content": {t: {} for t in [*AUDIO_TYPES, "text/event-stream"]},
        },
    },
)
async def tts(
    request: Request,
    body: TTSRequest,
    stream: bool | None = Query(None, description="same as the body's stream"),
) -> Response:
    """Synthesize ``text``. ``stream`` (body or query) sends audio as it is made: SSE when the
    client accepts ``text/event-stream``, otherwise chunked audio in the negotiated format."""
    service: SpeechService = request.app.state.speech
    voice = body.voice or (f"seed:{body.seed}" if body.seed is not None else None)
    rec = record(request, "/v1/tts", body.text, voice)
    accept = request.headers.get("accept")
    rec.stream = body.stream or bool(stream)
    sse = rec.stream and "text/event-stream" in (accept or "")
    if sse:
        rec.format = "sse"
    streamer = None
    if rec.stream:
        streamer = service.sse_native if sse else service.chunked
    return await respond(request, rec, lambda: service.plan_tts(body, accept, sse), streamer)
