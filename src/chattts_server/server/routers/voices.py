"""``/v1/voices``: the voice library (built-in names, saved voices, export/import, samples)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.convertors import StringConvertor, register_url_convertor

from ...engine import SynthesisRequest
from ...engine.text import LANGUAGE_PATTERN, TEXT_PATTERN, normalize_language
from ..openapi import AUDIO_TYPES, TIMEOUT_HEADER, errors
from ..protocol import (
    RESERVED_NAMES,
    VOICE_NAME_PATTERN,
    AudioFormatName,
    ImportResult,
    VoiceCreate,
    VoiceExport,
    VoiceInfo,
    VoiceList,
    VoicePatch,
)
from ..speech import SpeechService
from ..voices import VoiceLibrary
from .common import record, require_json, respond


class _VoiceName(StringConvertor):
    """A path segment naming a saved voice: never one of the collection's own routes
    (``export``, ``import``), so ``DELETE /v1/voices/export`` is a 405, not a voice lookup."""

    regex = "(?!(?:" + "|".join(sorted(RESERVED_NAMES)) + ")(?:/|$))[^/]+"


register_url_convertor("voice", _VoiceName())
router = APIRouter(prefix="/v1/voices", tags=["voices"])
SAMPLE_TEXT = {"zh": "你好，这是我的声音。", "en": "Hello, this is my voice."}
# a saved voice's name (checked by the library, which answers invalid_voice_name)
NAME = Path(
    description="a saved voice's name",
    json_schema_extra={"pattern": VOICE_NAME_PATTERN, "not": {"enum": sorted(RESERVED_NAMES)}},
)


def library(request: Request) -> VoiceLibrary:
    lib: VoiceLibrary = request.app.state.voices
    return lib


@router.get("", response_model=VoiceList, responses=errors(401, 429, 500, 503))
async def list_voices(request: Request) -> VoiceList:
    """Voices usable as ``voice``: the OpenAI names (fixed seeds) and saved voices;
    ``seed:N`` always works too."""
    return VoiceList(data=await library(request).list_all())


@router.post(
    "",
    status_code=201,
    response_model=VoiceInfo,
    dependencies=[Depends(require_json)],
    responses=errors(400, 401, 409, 413, 415, 429, 500, 503),
)
async def create_voice(request: Request, body: VoiceCreate) -> VoiceInfo:
    """Save a named voice from exactly one of ``seed``, ``spk_emb`` or ``ref_audio`` +
    ``ref_text``. A duplicate name is a 409."""
    lib = library(request)
    return lib.info(await lib.create(body))


@router.get("/export", response_model=VoiceExport, responses=errors(401, 429, 500, 503))
async def export_voices(request: Request) -> VoiceExport:
    """Every saved voice as one JSON document, for ``POST /v1/voices/import`` elsewhere."""
    return await library(request).export()


@router.post(
    "/import",
    response_model=ImportResult,
    dependencies=[Depends(require_json)],
    responses=errors(400, 401, 413, 415, 429, 500, 503),
)
async def import_voices(
    request: Request, body: VoiceExport, overwrite: bool = Query(False)
) -> ImportResult:
    """Import an export file, all or nothing; existing names are skipped unless ``overwrite``."""
    written, skipped = await library(request).import_(body, overwrite)
    return ImportResult(imported=written, skipped=skipped)


@router.get(
    "/{name:voice}",
    response_model=VoiceInfo,
    responses=errors(400, 401, 404, 405, 429, 500, 503),
)
async def get_voice(request: Request, name: str = NAME) -> VoiceInfo:
    lib = library(request)
    return lib.info(await lib.get(name))


@router.patch(
    "/{name:voice}",
    response_model=VoiceInfo,
    dependencies=[Depends(require_json)],
    responses=errors(400, 401, 404, 405, 413, 415, 429, 500, 503),
)
async def update_voice(request: Request, body: VoicePatch, name: str = NAME) -> VoiceInfo:
    """Change a voice's description, language or defaults (its sound never changes)."""
    lib = library(request)
    return lib.info(await lib.update(name, body))


@router.delete(
    "/{name:voice}",
    status_code=204,
    response_class=Response,
    responses=errors(400, 401, 404, 405, 429, 500, 503),
)
async def delete_voice(request: Request, name: str = NAME) -> Response:
    await library(request).delete(name)
    return Response(status_code=204)


@router.get(
    "/{name:voice}/sample",
    response_class=Response,
    responses={
        **errors(400, 401, 404, 405, 429, 500, 503, 504),
        200: {"description": "the sample in `format`", "content": {t: {} for t in AUDIO_TYPES}},
    },
    openapi_extra={"parameters": [TIMEOUT_HEADER]},
)
async def voice_sample(
    request: Request,
    name: str = NAME,
    format: AudioFormatName = Query("wav"),
    text: str | None = Query(
        None,
        max_length=200,
        description="what to say (default: a sentence in the voice's language)",
        json_schema_extra={"pattern": f"^$|{TEXT_PATTERN}"},
    ),
    lang: str | None = Query(
        None,
        description="a BCP-47 tag for Chinese or English",
        json_schema_extra={"pattern": LANGUAGE_PATTERN},
    ),
) -> Response:
    """A short preview of the voice (deterministic: ``manual_seed`` 0)."""
    lib = library(request)
    service: SpeechService = request.app.state.speech
    stored = await lib.get(name)
    choice = await lib.resolve(name)
    default = "zh" if stored.language == "zh" else "en"
    language = normalize_language(lang) if lang is not None else default
    text = text or SAMPLE_TEXT[language]
    rec = record(request, "/v1/voices/{name}/sample", text, name)
    synth = SynthesisRequest(
        text=text,
        spk_emb=choice.spk_emb,
        ref_tokens=choice.ref_tokens,
        ref_text=choice.ref_text,
        lang=language,
        manual_seed=0,
        **{k: v for k, v in choice.defaults.items()},
    )
    return await respond(request, rec, lambda: service.plan_direct(synth, format), None)
