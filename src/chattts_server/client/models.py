"""What the SDK returns: audio, stream events, voices, health; and the synthesis and voice
parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypedDict

from .wav import read_info

__all__ = [
    "Audio",
    "AudioChunk",
    "AudioFormat",
    "Done",
    "Health",
    "ImportResult",
    "Pauses",
    "Progress",
    "StreamEvent",
    "TTSParams",
    "Voice",
    "VoiceChanges",
    "VoiceDefaults",
]

AudioFormat: TypeAlias = Literal["wav", "pcm", "mp3", "opus", "flac", "aac"]


class Pauses(TypedDict, total=False):
    """Silence inserted by the server, in milliseconds (0–10000)."""

    comma: int
    period: int


class TTSParams(TypedDict, total=False):
    """Optional parameters of a synthesis; each is the ``POST /v1/tts`` field of that name.

    Give one voice source at most: ``voice`` (``"alloy"``…, or ``"seed:N"``), ``seed``,
    ``spk_emb``, or ``ref_audio`` (the clip's bytes; the SDK base64-encodes them) with
    ``ref_text``. ``None`` values are left out of the request (the server's defaults apply).
    """

    voice: str | None
    seed: int | None
    spk_emb: str | None
    ref_audio: bytes | None
    ref_text: str | None
    lang: Literal["zh", "en"] | None
    speed: float | None
    temperature: float | None
    top_p: float | None
    top_k: int | None
    refine_text: bool | None
    refine_prompt: str | None
    pauses: Pauses | None
    format: AudioFormat | None
    sample_rate: int | None
    manual_seed: int | None
    extensions: Mapping[str, Any] | None


@dataclass(frozen=True)
class Audio:
    """A whole synthesized clip (or the configured fallback clip).

    Attributes:
        data: The encoded file (raw s16le samples for ``pcm``).
        format: ``wav``, ``pcm``, ``mp3``, ``opus``, ``flac`` or ``aac``.
        sample_rate: Samples per second, ``None`` if unknown (a fallback clip not in WAV).
        request_id: The server's request id (``None`` for a fallback clip).
        fallback: True when this is the prerecorded fallback, not synthesized speech.
        ignored_fields: Request fields the server ignored (``X-Ignored-Fields``).
        endpoint: The base URL of the server that made it, one of the client's (``None``
            for a fallback clip).
    """

    data: bytes = field(repr=False)
    format: str
    sample_rate: int | None
    request_id: str | None = None
    fallback: bool = False
    ignored_fields: tuple[str, ...] = ()
    endpoint: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of audio for ``wav`` and ``pcm``; ``None`` for compressed formats."""
        if self.format == "pcm" and self.sample_rate:
            return len(self.data) / (2 * self.sample_rate)
        if self.format == "wav" and (info := read_info(self.data)) is not None:
            return info.duration
        return None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`data` to ``path`` and return it as a :class:`~pathlib.Path`."""
        target = Path(path)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class AudioChunk:
    """Stream event: the next piece of audio, 16-bit little-endian mono PCM."""

    seq: int
    sample_rate: int
    pcm: bytes = field(repr=False)

    @property
    def duration(self) -> float:
        """Seconds of audio in this chunk."""
        return len(self.pcm) / (2 * self.sample_rate)


@dataclass(frozen=True)
class Progress:
    """Stream event: sentences synthesized so far, and the audio produced (ms)."""

    sentences_done: int
    sentences_total: int
    audio_ms: int


@dataclass(frozen=True)
class Done:
    """Stream event, always the last: the stream is complete. ``endpoint`` is the base URL
    of the server that streamed it, one of the client's."""

    request_id: str
    audio_duration_ms: int
    elapsed_ms: int
    time_to_first_audio_ms: int | None
    finish_reason: str
    endpoint: str | None = None


StreamEvent: TypeAlias = AudioChunk | Progress | Done


class VoiceDefaults(TypedDict, total=False):
    """Parameters a saved voice applies to a synthesis that does not set them."""

    speed: float
    temperature: float
    top_p: float
    top_k: int
    refine_text: bool


class VoiceChanges(TypedDict, total=False):
    """What ``voices.update()`` may change: a key left out stays as it is; ``None`` clears it
    (``defaults=None``: no defaults). A voice's sound never changes."""

    description: str | None
    language: Literal["zh", "en"] | None
    defaults: VoiceDefaults | None


@dataclass(frozen=True)
class Voice:
    """A voice usable as ``voice=``.

    Attributes:
        id: Its name.
        kind: ``builtin`` (an OpenAI name with a fixed seed), or how a saved voice was made:
            ``seed``, ``spk_emb`` (a speaker string) or ``ref_audio`` (a reference clip).
        seed: The voice seed (built-in and seed voices).
        description: Free text.
        language: ``zh`` or ``en``, the language of its samples; ``None`` if not set.
        defaults: Parameters it applies when a synthesis does not set them.
        model_fingerprint: The weights a saved voice was made with (``None`` for built-ins).
        created_at: When it was saved, Unix time (``None`` for built-ins).
    """

    id: str
    kind: str
    seed: int | None = None
    description: str | None = None
    language: str | None = None
    defaults: VoiceDefaults = field(default_factory=VoiceDefaults)
    model_fingerprint: str | None = None
    created_at: float | None = None


@dataclass(frozen=True)
class ImportResult:
    """What ``voices.import_()`` did: names written, and names skipped as existing."""

    imported: tuple[str, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class Health:
    """The server's readiness: ``ready`` once the model is loaded and warmed up.

    ``status`` is ``ready``, ``loading`` or ``loading failed: …``; ``model`` describes the
    loaded model (device, sample rate, source) when ready; ``endpoint`` is the base URL of the
    server that answered, one of the client's.
    """

    status: str
    ready: bool
    model: dict[str, Any] | None = None
    endpoint: str | None = None
