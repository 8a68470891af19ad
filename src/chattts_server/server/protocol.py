"""Wire models: every JSON body the server accepts or returns, in one place.

Bounds come from the engine (:mod:`chattts_server.engine.limits`, :mod:`..engine.text`); limits
that are settings (text length, token limit, request timeout) are written into the OpenAPI
document by :mod:`.openapi`. Rules the engine checks with its own error codes (the text rule,
languages, the refine prompt) are published here as schema patterns but checked by the engine,
so a client gets ``empty_text`` or ``unsupported_language`` rather than a generic pattern error.
Each pattern and the check behind it accept exactly the same strings (tested).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..audio import AudioFormat, allowed_sample_rates
from ..engine import limits
from ..engine.text import LANGUAGE_PATTERN, REFINE_PROMPT_PATTERN, TEXT_PATTERN
from .errors import BadRequestError

AudioFormatName = Literal["wav", "pcm", "mp3", "opus", "flac", "aac"]
SampleRate = Literal[8000, 16000, 22050, 24000, 44100, 48000]
OPUS_SAMPLE_RATES = allowed_sample_rates(AudioFormat.OPUS)  # of ours, what libopus runs at

# Keys of ``extensions`` this server understands; any other key is ignored and listed in the
# ``X-Ignored-Fields`` response header.
KNOWN_EXTENSIONS = ("max_new_tokens", "min_new_tokens")

# OpenAI's voice names, each a fixed ChatTTS voice seed (stable across releases).
BUILTIN_VOICES: dict[str, int] = {
    "alloy": 1001, "ash": 1002, "ballad": 1003, "coral": 1004, "echo": 1005, "fable": 1006,
    "nova": 1007, "onyx": 1008, "sage": 1009, "shimmer": 1010, "verse": 1011, "marin": 1012,
    "cedar": 1013,
}  # fmt: skip
RESERVED_NAMES = frozenset({"export", "import"})  # routes under /v1/voices/
VOICE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
OPENAI_SPEED = (0.25, 4.0)  # OpenAI's range; clamped to the engine's


def uint_pattern(hi: int) -> str:
    """A regular expression for the decimal integers 0…``hi`` (no sign, no leading zeros)."""
    digits = str(hi)
    alts = [f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else "", "0"]
    for i, d in enumerate(digits):  # numbers of full length, below hi from digit i on
        if d != "0" and (i or d != "1"):
            first = "1" if i == 0 else "0"
            rest = len(digits) - i - 1
            alts.append(f"{digits[:i]}[{first}-{int(d) - 1}][0-9]{{{rest}}}")
    alts.append(digits)
    return "(?:" + "|".join(a for a in alts if a) + ")"


SEED_VOICE_PATTERN = rf"^seed:{uint_pattern(limits.SEED[1])}$"
# a voice field: a built-in or saved name (unknown → 404), or seed:N with N a valid seed
VOICE_PATTERN = rf"^(?!seed:)|{SEED_VOICE_PATTERN}"


def decode_b64(value: str, field: str) -> bytes:
    """A base64 field's bytes (a reference clip); 400 ``invalid_base64`` naming the field."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"{field} is not valid base64", code="invalid_base64",
                              param=field) from exc  # fmt: skip


def valid_voice_name(name: str) -> bool:
    return re.fullmatch(VOICE_NAME_PATTERN[1:-1], name) is not None


def valid_seed_voice(voice: str) -> bool:
    return re.fullmatch(SEED_VOICE_PATTERN[1:-1], voice) is not None


def _text(description: str, **kw: Any) -> Any:
    return Field(description=description, json_schema_extra={"pattern": TEXT_PATTERN}, **kw)


def _opaque(description: str) -> Any:
    """A string only the engine can check (a speaker string, an audio clip, encoded tokens):
    never empty."""
    return Field(None, description=description, json_schema_extra={"minLength": 1})


def _lang(description: str) -> Any:
    return Field(None, description=description, json_schema_extra={"pattern": LANGUAGE_PATTERN})


SchemaRule = Callable[[dict[str, Any]], None]


def _rules(*rules: SchemaRule) -> SchemaRule:
    def apply(schema: dict[str, Any]) -> None:
        for rule in rules:
            rule(schema)

    return apply


def _sources(
    fields: tuple[str, ...],
    companions: dict[str, str],
    none_allowed: bool,
    nullable: bool = True,
) -> SchemaRule:
    """JSON Schema for "one voice source" (``none_allowed``: "at most one"): each variant gives
    one source (with its companion, e.g. ref_audio + ref_text) and leaves the others null —
    or, where there is no null (``nullable=False``: a query string), absent."""
    every = [*fields, *companions.values()]
    given = {"not": {"type": "null"}}
    null = {"type": "null"}

    def variant(chosen: list[str]) -> dict[str, Any]:
        if not nullable:
            others = [{"required": [f]} for f in every if f not in chosen]
            return {"required": chosen, "not": {"anyOf": others}}
        return {
            "required": chosen,
            "properties": {f: given if f in chosen else null for f in every},
        }

    variants = [variant([f, *([companions[f]] if f in companions else [])]) for f in fields]
    if none_allowed:
        variants.append(variant([]))

    def rule(schema: dict[str, Any]) -> None:
        schema["anyOf"] = variants

    return rule


def _opus_rates(schema: dict[str, Any]) -> None:
    """``format: opus`` runs at libopus's rates only."""
    schema["if"] = {"properties": {"format": {"const": "opus"}}, "required": ["format"]}
    rates = {"anyOf": [{"enum": list(OPUS_SAMPLE_RATES)}, {"type": "null"}]}
    schema["then"] = {"properties": {"sample_rate": rates}}


def _integral(value: Any) -> Any:
    """JSON Schema's integers include 2.0: accept integral floats, nothing else (strict)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]
# bounded integers (the bounds inside the type, so an optional field's schema carries them)
SeedInt = Annotated[int, Field(ge=limits.SEED[0], le=limits.SEED[1]), BeforeValidator(_integral)]
TopKInt = Annotated[int, Field(ge=limits.TOP_K[0], le=limits.TOP_K[1]), BeforeValidator(_integral)]


class _Strict(BaseModel):
    """JSON types as JSON Schema has them: no "5" for 5, no 1 for true (strict), integral
    floats for integers."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PausesModel(_Strict):
    comma: Int = Field(0, ge=limits.PAUSE_MS[0], le=limits.PAUSE_MS[1],
                       description="silence after each clause, ms")  # fmt: skip
    period: Int = Field(0, ge=limits.PAUSE_MS[0], le=limits.PAUSE_MS[1],
                        description="silence after each sentence, ms")  # fmt: skip


class Extensions(BaseModel):
    """Vendor options; keys other than these are ignored and listed in ``X-Ignored-Fields``."""

    model_config = ConfigDict(extra="allow", strict=True)

    max_new_tokens: Annotated[int, Field(ge=1), BeforeValidator(_integral)] | None = Field(
        None, description="GPT steps per segment (21.3 ms of audio each), at most the "
        "server's max_new_tokens",
    )  # fmt: skip
    min_new_tokens: Annotated[int, Field(ge=0), BeforeValidator(_integral)] | None = Field(
        None, description="at least this many GPT steps per segment (capped at the "
        "segment's limit): forces a length, for benchmarks",
    )  # fmt: skip


class TTSRequest(_Strict):
    """``POST /v1/tts``. One voice source at most: ``voice`` (or its synonym ``voice_id``),
    ``seed``, ``spk_emb``, or ``ref_audio`` + ``ref_text``."""

    model_config = ConfigDict(json_schema_extra=_rules(
        _sources(("voice", "voice_id", "seed", "spk_emb", "ref_audio"), {"ref_audio": "ref_text"},
                 none_allowed=True),
        _opus_rates,
    ))  # fmt: skip

    text: str = _text(
        "text to speak (Chinese, English, digits); control tokens [uv_break] [v_break] [lbreak] "
        "[llbreak] [laugh] pass through; no other [word]",
        examples=["Hello there. 你好。"],
    )
    voice: str | None = Field(
        None,
        description="a built-in voice name (alloy, echo, …), a saved voice, or seed:N",
        json_schema_extra={"pattern": VOICE_PATTERN},
        examples=["seed:42"],
    )
    voice_id: str | None = Field(
        None,
        description="synonym of voice (give one of them)",
        json_schema_extra={"pattern": VOICE_PATTERN},
    )
    seed: SeedInt | None = Field(None, description="voice seed")
    spk_emb: str | None = _opaque("a ChatTTS speaker string")
    ref_audio: str | None = _opaque("base64 WAV/FLAC/Ogg reference clip, 0.5–30 s")
    ref_text: str | None = _text("transcript of ref_audio", default=None)
    lang: str | None = _lang(
        "a BCP-47 tag for Chinese or English, case-insensitive (zh, zh-CN, zh-Hans, cmn, en, "
        "en-US, …); default: detected from the text"
    )
    speed: float = Field(1.0, ge=limits.SPEED[0], le=limits.SPEED[1])
    temperature: float = Field(0.3, ge=limits.TEMPERATURE[0], le=limits.TEMPERATURE[1])
    top_p: float = Field(0.7, ge=limits.TOP_P[0], le=limits.TOP_P[1])
    top_k: TopKInt = 20
    refine_text: bool = False
    refine_prompt: str = Field(
        "",
        description="[oral_0-9] [laugh_0-2] [break_0-7] tokens only",
        json_schema_extra={"pattern": REFINE_PROMPT_PATTERN},
    )
    pauses: PausesModel = Field(default_factory=PausesModel)
    format: AudioFormatName | None = Field(
        None, description="default: from Accept, else wav; with stream, asks for chunked audio"
    )
    sample_rate: SampleRate | None = Field(None, description="default 24000")
    stream: bool = False
    manual_seed: SeedInt | None = Field(
        None,
        description="sampling seed: same input, same samples",
    )
    extensions: Extensions = Field(default_factory=Extensions)

    @property
    def voice_name(self) -> str | None:
        return self.voice if self.voice is not None else self.voice_id


# The /v1/tts fields that fit a query string (GET /v1/tts/stream, for EventSource).
QUERY_FIELDS = ("text", "voice", "lang", "speed", "temperature", "top_p", "top_k", "seed",
                "manual_seed", "sample_rate", "refine_text")  # fmt: skip


def _digits(value: Any) -> Any:
    """A query string's number, for a literal of numbers."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _as_in_tts(name: str) -> Any:
    """The field of :class:`TTSRequest` (its default, bounds, pattern and description)."""
    return TTSRequest.model_fields[name]


class TTSQuery(BaseModel):
    """``GET /v1/tts/stream``: the query-string subset of :class:`TTSRequest` (same fields,
    same bounds and rules; values parsed from their text), plus ``token``. One voice source
    at most: ``voice`` (``seed:N`` included) or ``seed``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_sources(("voice", "seed"), {}, none_allowed=True, nullable=False),
    )

    text: str = _as_in_tts("text")
    voice: str | None = _as_in_tts("voice")
    lang: str | None = _as_in_tts("lang")
    speed: float = _as_in_tts("speed")
    temperature: float = _as_in_tts("temperature")
    top_p: float = _as_in_tts("top_p")
    top_k: TopKInt = _as_in_tts("top_k")
    seed: SeedInt | None = _as_in_tts("seed")
    manual_seed: SeedInt | None = _as_in_tts("manual_seed")
    sample_rate: Annotated[SampleRate, BeforeValidator(_digits)] | None = _as_in_tts("sample_rate")
    refine_text: bool = _as_in_tts("refine_text")
    token: str | None = Field(
        None, description="a stream token (POST /v1/stream-tokens) when API keys are on: "
        "EventSource cannot send Authorization",
    )  # fmt: skip

    def request(self) -> TTSRequest:
        given = self.model_dump(exclude_unset=True, exclude={"token"})
        return TTSRequest.model_validate({**given, "stream": True})


class StreamToken(BaseModel):
    """``POST /v1/stream-tokens``: use ``token`` as ``?token=`` on ``GET /v1/tts/stream``."""

    token: str
    expires_at: float = Field(description="Unix time")
    expires_in: float = Field(description="seconds")


class SpeechRequest(_Strict):
    """``POST /v1/audio/speech``, as in the OpenAI API reference."""

    model: str = Field(..., description="any string; every model name means ChatTTS")
    input: str = _text("text to speak", examples=["Hello there."])
    voice: str = Field(
        ...,
        description="OpenAI voice name, seed:N, or a saved voice",
        json_schema_extra={"pattern": VOICE_PATTERN},
        examples=["alloy"],
    )
    response_format: AudioFormatName = "mp3"
    speed: float = Field(
        1.0, ge=OPENAI_SPEED[0], le=OPENAI_SPEED[1],
        description=f"clamped to {limits.SPEED[0]}–{limits.SPEED[1]}",
    )  # fmt: skip
    instructions: str | None = Field(None, description="accepted, not supported by ChatTTS")
    stream_format: Literal["audio", "sse"] = "audio"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = None


class ErrorBody(BaseModel):
    """The error shape of every endpoint (OpenAI's)."""

    error: ErrorDetail


class VoiceDefaults(_Strict):
    """Parameters a saved voice applies when a request does not set them."""

    speed: float | None = Field(None, ge=limits.SPEED[0], le=limits.SPEED[1])
    temperature: float | None = Field(None, ge=limits.TEMPERATURE[0], le=limits.TEMPERATURE[1])
    top_p: float | None = Field(None, ge=limits.TOP_P[0], le=limits.TOP_P[1])
    top_k: TopKInt | None = None
    refine_text: bool | None = None


def _voice_name(**kw: Any) -> Any:
    return Field(
        pattern=VOICE_NAME_PATTERN,
        description="letters, digits, - and _, 1–64 characters",
        examples=["narrator-en"],
        **kw,
    )


class VoiceCreate(_Strict):
    """``POST /v1/voices``: a name and exactly one of ``seed``, ``spk_emb``, or ``ref_audio``
    (base64 WAV/FLAC/Ogg) + ``ref_text``."""

    model_config = ConfigDict(json_schema_extra=_sources(
        ("seed", "spk_emb", "ref_audio"), {"ref_audio": "ref_text"}, none_allowed=False
    ))  # fmt: skip

    name: str = _voice_name()
    seed: SeedInt | None = Field(None, examples=[42])
    spk_emb: str | None = _opaque("a ChatTTS speaker string")
    ref_audio: str | None = _opaque("base64 WAV/FLAC/Ogg reference clip, 0.5–30 s")
    ref_text: str | None = _text("transcript of ref_audio", default=None)
    description: str | None = Field(None, max_length=500)
    language: str | None = _lang("a BCP-47 tag for Chinese or English (zh-CN, en-US, …)")
    defaults: VoiceDefaults = Field(default_factory=VoiceDefaults)


class VoicePatch(_Strict):
    """``PATCH /v1/voices/{name}``: what a voice says about itself; its sound never changes."""

    description: str | None = Field(None, max_length=500)
    language: str | None = _lang("a BCP-47 tag for Chinese or English (zh-CN, en-US, …)")
    defaults: VoiceDefaults | None = None


class VoiceInfo(BaseModel):
    id: str
    kind: Literal["builtin", "seed", "spk_emb", "ref_audio"]
    seed: int | None = None
    description: str | None = None
    language: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    model_fingerprint: str | None = None
    created_at: float | None = None


# What a stored voice of each kind carries (True) and must not carry (False).
RECORD_FIELDS: dict[str, dict[str, bool]] = {
    "seed": {"seed": True, "spk_emb": True, "ref_tokens": False, "ref_text": False},
    "spk_emb": {"seed": False, "spk_emb": True, "ref_tokens": False, "ref_text": False},
    "ref_audio": {"seed": False, "spk_emb": False, "ref_tokens": True, "ref_text": True},
}


def _record_rules(schema: dict[str, Any]) -> None:
    """What each kind carries, and names that are reserved."""
    schema["properties"]["name"]["not"] = {"enum": sorted({*BUILTIN_VOICES, *RESERVED_NAMES})}
    schema["anyOf"] = [
        {
            "properties": {
                "kind": {"const": kind},
                **{f: {"not": {"type": "null"}} if has else {"type": "null"}
                   for f, has in fields.items()},
            },
            "required": ["kind", *(f for f, has in fields.items() if has)],
        }
        for kind, fields in RECORD_FIELDS.items()
    ]  # fmt: skip


class VoiceRecord(BaseModel):
    """One voice in an export file, as stored: checked whole before anything is written."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_record_rules)

    name: str = _voice_name()
    kind: Literal["seed", "spk_emb", "ref_audio"]
    model_fingerprint: str
    seed: SeedInt | None = None
    spk_emb: str | None = _opaque("the speaker string")
    ref_tokens: str | None = _opaque("the encoded reference clip")
    ref_text: str | None = _text("the reference clip's transcript", default=None)
    description: str | None = None
    language: str | None = _lang("zh or en (BCP-47 tags are normalized)")
    defaults: VoiceDefaults = Field(default_factory=VoiceDefaults)
    created_at: float = Field(0.0, ge=0)
    updated_at: float = Field(0.0, ge=0)


class VoiceExport(BaseModel):
    """A portable file of saved voices (``GET /v1/voices/export``, ``POST /v1/voices/import``)."""

    format: Literal["chattts-server-voices"] = "chattts-server-voices"
    version: Literal[1] = 1
    voices: list[VoiceRecord]


class ImportResult(BaseModel):
    imported: list[str]
    skipped: list[str]


class VoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VoiceInfo]


class HealthStatus(BaseModel):
    status: str
    model: dict[str, Any] | None = None


# --- SSE payloads ----------------------------------------------------------------------------


class AudioEvent(BaseModel):
    seq: int
    sample_rate: int
    format: Literal["pcm_s16le"] = "pcm_s16le"
    audio: str


class ProgressEvent(BaseModel):
    sentences_done: int
    sentences_total: int
    audio_ms: int


class DoneEvent(BaseModel):
    request_id: str
    audio_duration_ms: int
    elapsed_ms: int
    time_to_first_audio_ms: int | None
    finish_reason: str


class SpeechAudioDelta(BaseModel):
    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class SpeechAudioDone(BaseModel):
    type: Literal["speech.audio.done"] = "speech.audio.done"
    usage: Usage
