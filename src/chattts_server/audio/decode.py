"""Decoding whole byte strings of any served format back to mono float PCM."""

from __future__ import annotations

import io

import av
import numpy as np

from .errors import DecodeError
from .formats import AudioFormat
from .pcm import int16_to_float
from .wav import WavReader

__all__ = ["decode_audio"]

_DEMUXERS = {
    AudioFormat.MP3: "mp3",
    AudioFormat.OPUS: "ogg",
    AudioFormat.AAC: "aac",
    AudioFormat.FLAC: "flac",
}


def decode_audio(
    data: bytes, fmt: AudioFormat | str | None = None, *, sample_rate: int = 24000
) -> tuple[np.ndarray, int]:
    """Decode ``data`` to mono float32 samples (channels averaged) and their sample rate.

    Args:
        data: A complete file in one of the :class:`AudioFormat` formats.
        fmt: Its format; ``None`` sniffs WAV by its RIFF header and lets FFmpeg probe the
            rest. Raw PCM cannot be sniffed and must be named.
        sample_rate: Rate of raw PCM (``fmt="pcm"``); ignored otherwise.

    Opus always decodes at 48 kHz. Lossy formats come back with their codec's priming and
    padding unless the container records them (Ogg does, ADTS and our MP3 streams do not).

    Raises:
        UnsupportedFormatError: unknown ``fmt``.
        DecodeError: ``data`` is not valid audio of that format.
    """
    if fmt is not None:
        fmt = AudioFormat.parse(fmt)
    if fmt is AudioFormat.PCM:
        if len(data) % 2:
            raise DecodeError("raw PCM has an odd number of bytes")
        return int16_to_float(np.frombuffer(data, dtype="<i2")), sample_rate
    if fmt is AudioFormat.WAV or (fmt is None and data[:4] == b"RIFF"):
        return _decode_wav(data)
    return _decode_av(data, _DEMUXERS[fmt] if fmt else None)


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    reader = WavReader()
    samples = reader.feed(data)
    reader.close()
    assert reader.channels is not None and reader.sample_rate is not None
    mono = int16_to_float(samples).reshape(-1, reader.channels).mean(axis=1, dtype=np.float32)
    return mono, reader.sample_rate


def _decode_av(data: bytes, demuxer: str | None) -> tuple[np.ndarray, int]:
    try:
        with av.open(io.BytesIO(data), "r", format=demuxer) as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream found")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")
            blocks = [
                out.to_ndarray().mean(axis=0, dtype=np.float32)
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
            rate = stream.codec_context.sample_rate
    except av.FFmpegError as exc:
        raise DecodeError(f"cannot decode audio: {exc}") from exc
    if not blocks or not rate:
        raise DecodeError("no audio decoded")
    return np.concatenate(blocks), rate
