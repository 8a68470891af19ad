"""Voices: the one-voice-source rule, seed checks, a seed's speaker string on torch, and
reference clips decoded for encoding (the speaker-string and clip-token checks are the
engines', :class:`~.pipeline.PipelineEngine`; the torch-free speaker math is :mod:`.speakers`).

A ChatTTS voice is a speaker embedding (``spk_emb``, a base16384 string of float16 values) or a
reference clip encoded into DVAE tokens (``spk_smp``) with its transcript (``txt_smp``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .limits import REF_AUDIO_MIN_SECONDS, SEED


@dataclass(frozen=True)
class Voice:
    """A resolved voice, ready for ChatTTS's ``InferCodeParams``."""

    spk_emb: str | None = None
    ref_pcm: np.ndarray | None = None  # 24 kHz mono float32, encoded lazily on the model thread
    ref_tokens: str | None = None  # a clip already encoded (ChatTTS ``spk_smp``)
    ref_text: str = ""
    seed: int | None = None


def check_one_source(given: Sequence[str], required: Sequence[str] = ()) -> None:
    """The voice-source rule, for every caller: one source at most — exactly one of
    ``required`` when that is given. ``given`` names the sources a request set, in the
    caller's own words (``voice``, ``seed``, …) and order; the error names the second one."""
    if len(given) > 1:
        raise InvalidInputError(
            f"give one voice source, not {' and '.join(given)}",
            code="conflicting_voice",
            field=given[1],
        )
    if required and not given:
        raise InvalidInputError(
            f"give exactly one of {', '.join(required)}", code="missing_field", field=required[0]
        )


def check_seed(value: object, field: str) -> int:
    """An integer in 0…2**32-1 (booleans and floats are refused, not rounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be an integer", code="invalid_type", field=field)
    if not SEED[0] <= value <= SEED[1]:
        raise InvalidInputError(
            f"{field} must be between {SEED[0]} and {SEED[1]}", code="out_of_range", field=field
        )
    return value


def spk_emb_from_seed(seed: int, speaker: Any) -> str:
    """The speaker string for ``seed``: the same on every start and machine for given weights.

    Draws from a private generator (the global torch RNG is left alone), scaled by the model's
    speaker statistics exactly as ``Speaker.sample_random`` does.
    """
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(speaker.dim, generator=gen, dtype=torch.float32)
    std, mean = speaker.std.cpu().float(), speaker.mean.cpu().float()
    return str(speaker._encode((noise * std + mean).to(torch.float16)))


def _check_riff(data: bytes) -> None:
    """A WAV whose data chunk claims more bytes than the file holds is truncated or lying."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                raise InvalidInputError(
                    f"ref_audio's WAV header claims {size} bytes of audio; the file holds "
                    f"{len(data) - pos - 8}",
                    code="invalid_ref_audio",
                    field="ref_audio",
                )
            return
        pos += 8 + size + (size & 1)


def decode_reference(
    data: object, *, sample_rate: int, max_bytes: int, max_seconds: float
) -> np.ndarray:
    """Decode a reference clip (WAV, FLAC or Ogg bytes) to mono float32 at ``sample_rate``."""
    import soundfile as sf
    import soxr

    field = "ref_audio"
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInputError(
            "ref_audio must be non-empty audio bytes", code="invalid_type", field=field
        )
    if len(data) > max_bytes:
        raise InvalidInputError(
            f"ref_audio is {len(data)} bytes; the limit is {max_bytes}",
            code="ref_audio_too_large",
            field=field,
        )
    _check_riff(bytes(data))
    try:
        with sf.SoundFile(io.BytesIO(bytes(data))) as f:
            if not 4000 <= f.samplerate <= 192_000:
                raise InvalidInputError(
                    f"ref_audio has an implausible sample rate ({f.samplerate} Hz)",
                    code="invalid_ref_audio",
                    field=field,
                )
            frames = f.frames
            if frames / f.samplerate > max_seconds:
                raise InvalidInputError(
                    f"ref_audio lasts {frames / f.samplerate:.1f} s; the limit is {max_seconds} s",
                    code="ref_audio_too_long",
                    field=field,
                )
            pcm = f.read(dtype="float32", always_2d=True)
            rate = f.samplerate
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            "ref_audio is not a readable audio file (WAV, FLAC or Ogg)",
            code="invalid_ref_audio",
            field=field,
        ) from exc
    mono = pcm.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(mono)):
        raise InvalidInputError(
            "ref_audio holds NaN or infinite samples", code="invalid_ref_audio", field=field
        )
    if mono.size / rate < REF_AUDIO_MIN_SECONDS:
        raise InvalidInputError(
            f"ref_audio must last at least {REF_AUDIO_MIN_SECONDS} s",
            code="ref_audio_too_short",
            field=field,
        )
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate).astype(np.float32)
    return mono
