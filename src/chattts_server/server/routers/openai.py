"""``POST /v1/audio/speech``: OpenAI-compatible (an OpenAI client pointed here works as is)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ..openapi import AUDIO_TYPES, TIMEOUT_HEADER, errors
from ..protocol import SpeechRequest
from ..speech import SpeechService
from .common import record, require_json, respond

router = APIRouter(tags=["openai"])


@router.post(
    "/v1/audio/speech",
    dependencies=[Depends(require_json)],
    response_class=Response,
    responses={
        **errors(400, 401, 404, 413, 415, 429, 500, 503, 504),
        200: {
            "description": "audio in response_format (chunked), or text/event-stream with "
            "speech.audio.delta / speech.audio.done events when stream_format is sse",
            "content": {t: {} for t in [*AUDIO_TYPES, "text/event-stream"]},
        },
    },
    openapi_extra={"parameters": [TIMEOUT_HEADER]},
)
async def speech(request: Request, body: SpeechRequest) -> Response:
    """Every ``model`` name means ChatTTS; ``speed`` is clamped to 0.5–2.0; ``instructions`` is
    accepted and ignored (ChatTTS takes no style prompt)."""
    service: SpeechService = request.app.state.speech
    rec = record(request, "/v1/audio/speech", body.input, body.voice)
    rec.stream = True
    if body.stream_format == "sse":
        rec.format, streamer = "sse", service.sse_openai
    else:
        streamer = service.chunked
    return await respond(request, rec, lambda: service.plan_speech(body), streamer)
