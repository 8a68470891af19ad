"""Wire models: every JSON body the server accepts or returns, in one place."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AudioFormatName = Literal["wav", "pcm", "mp3", "opus", "flac", "aac"]
SampleRate = Literal[8000, 16000, 22050, 24000, 44100, 48000]

# Keys of ``extensions`` this server understands; any other key is ignored and listed in the
# ``X-Ignored-Fields`` response header.
KNOWN_EXTENSIONS = ("max_new_tokens", "min_new_tokens")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class PausesModel(_Strict):
    comma: int = Field(0, ge=0, le=10_000, description="silence after each clause, ms")
    period: int = Field(0, ge=0, le=10_000, description="silence after each sentence, ms")


class TTSRequest(_Strict):
    """``POST /v1/tts``. One voice source at most: ``voice``, ``seed``, ``spk_emb`` or
    ``ref_audio`` + ``ref_text``."""

    text: str = Field(..., description="text to speak; control tokens like [uv_break] pass")
    voice: str | None = Field(
        None, description="a built-in voice name (alloy, echo, …) or seed:N", examples=["seed:42"]
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="voice seed")
    spk_emb: str | None = Field(None, description="a ChatTTS speaker string")
    ref_audio: str | None = Field(None, description="base64 WAV/FLAC/Ogg reference clip")
    ref_text: str | None = Field(None, description="transcript of ref_audio")
    lang: Literal["zh", "en"] | None = None
    speed: float = Field(1.0, ge=0.5, le=2.0)
    temperature: float = Field(0.3, gt=0, le=2.0)
    top_p: float = Field(0.7, gt=0, le=1.0)
    top_k: int = Field(20, ge=1, le=626)
    refine_text: bool = False
    refine_prompt: str = Field("", description="[oral_N][laugh_N][break_N] tokens only")
    pauses: PausesModel = Field(default_factory=PausesModel)
    format: AudioFormatName | None = Field(None, description="default: from Accept, else wav")
    sample_rate: SampleRate | None = Field(None, description="default 24000")
    stream: bool = False
    manual_seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="sampling seed: same input, same samples"
    )
    extensions: dict[str, Any] = Field(
        default_factory=dict,
        description=f"vendor options; understood: {', '.join(KNOWN_EXTENSIONS)}",
    )


class SpeechRequest(BaseModel):
    """``POST /v1/audio/speech``, as in the OpenAI API reference."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="any string; every model name means ChatTTS")
    input: str = Field(..., description="text to speak")
    voice: str = Field(..., description="OpenAI voice name, seed:N, or a saved voice")
    response_format: AudioFormatName = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0, description="clamped to 0.5–2.0")
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

    speed: float | None = Field(None, ge=0.5, le=2.0)
    temperature: float | None = Field(None, gt=0, le=2.0)
    top_p: float | None = Field(None, gt=0, le=1.0)
    top_k: int | None = Field(None, ge=1, le=626)
    refine_text: bool | None = None


VOICE_NAME = Field(
    ...,
    pattern=r"^[A-Za-z0-9_-]{1,64}$",
    description="letters, digits, - and _, 1–64 characters",
    examples=["narrator-en"],
)


class VoiceCreate(_Strict):
    """``POST /v1/voices``: a name and exactly one of ``seed``, ``spk_emb``, or ``ref_audio``
    (base64 WAV/FLAC/Ogg) + ``ref_text``."""

    name: str = VOICE_NAME
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    spk_emb: str | None = None
    ref_audio: str | None = None
    ref_text: str | None = None
    description: str | None = Field(None, max_length=500)
    language: Literal["zh", "en"] | None = None
    defaults: VoiceDefaults = Field(default_factory=VoiceDefaults)


class VoicePatch(_Strict):
    """``PATCH /v1/voices/{name}``: what a voice says about itself; its sound never changes."""

    description: str | None = Field(None, max_length=500)
    language: Literal["zh", "en"] | None = None
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


class VoiceExport(BaseModel):
    """A portable file of saved voices (``GET /v1/voices/export``, ``POST /v1/voices/import``)."""

    format: Literal["chattts-server-voices"] = "chattts-server-voices"
    version: Literal[1] = 1
    voices: list[dict[str, Any]]


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
