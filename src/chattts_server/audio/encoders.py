"""Streaming encoders: float PCM chunks in, bytes of the chosen format out, as they are ready.

Every encoder validates each chunk (see :func:`~chattts_server.audio.pcm.validate_pcm`),
resamples it from the input rate to the output rate with one stateful
:class:`~chattts_server.audio.resample.StreamingResampler`, and hands it to the format
writer. Output is always mono. Compressed formats use one PyAV container and codec per
stream, writing into an in-memory sink that is drained after every call, so each call
returns exactly the bytes the codec and muxer have produced since the last one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from av.audio.stream import AudioStream

from .errors import UnsupportedSampleRateError
from .formats import AudioFormat, check_sample_rate
from .pcm import float_to_int16, validate_pcm
from .resample import StreamingResampler, resampled_length
from .wav import wav_header

__all__ = ["Encoder", "create_encoder"]


class Encoder(ABC):
    """Streaming encoder of mono float PCM at ``input_rate`` into ``format`` at ``sample_rate``.

    Call :meth:`encode` for each chunk as it is produced and :meth:`flush` once at the end;
    concatenating everything they return gives the complete file. Use
    :func:`create_encoder` to get one.
    """

    def __init__(self, fmt: AudioFormat, sample_rate: int, input_rate: int) -> None:
        self.format = fmt
        self.sample_rate = sample_rate
        self.input_rate = input_rate
        self._resampler = StreamingResampler(input_rate, sample_rate)
        self._flushed = False

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of the encoded stream."""
        return self.format.content_type

    def encode(self, chunk: np.ndarray) -> bytes:
        """Feed the next chunk of PCM; return the encoded bytes ready now (possibly ``b""``).

        ``chunk`` is 1-D float32/float64 (full scale ±1.0, louder samples are clipped) or
        int16, at ``input_rate``; empty chunks are fine. An invalid chunk raises before
        anything is consumed, so the stream stays intact.

        Raises:
            InvalidPCMError: ``chunk`` is not valid PCM.
            RuntimeError: :meth:`flush` was already called.
        """
        self._check_open()
        return self._write(self._resampler.process(validate_pcm(chunk)))

    def flush(self) -> bytes:
        """End the stream and return its remaining bytes. The encoder is unusable afterwards."""
        self._check_open()
        self._flushed = True
        return self._write(self._resampler.flush()) + self._finish()

    def _check_open(self) -> None:
        if self._flushed:
            raise RuntimeError("encoder already flushed")

    @abstractmethod
    def _write(self, samples: np.ndarray) -> bytes:
        """Encode float32 samples at the output rate."""

    @abstractmethod
    def _finish(self) -> bytes:
        """Return the bytes that end the stream."""


class _PCMEncoder(Encoder):
    def _write(self, samples: np.ndarray) -> bytes:
        return float_to_int16(samples).astype("<i2", copy=False).tobytes()

    def _finish(self) -> bytes:
        return b""


class _WavEncoder(_PCMEncoder):
    # With a known length the header is authoritative: the data is cut or zero-padded to it.
    def __init__(self, sample_rate: int, input_rate: int, total_samples: int | None) -> None:
        super().__init__(AudioFormat.WAV, sample_rate, input_rate)
        self._left = (
            None
            if total_samples is None
            else resampled_length(total_samples, input_rate, sample_rate)
        )
        self._header = wav_header(sample_rate, self._left)

    def _write(self, samples: np.ndarray) -> bytes:
        if self._left is not None:
            samples = samples[: self._left]
            self._left -= len(samples)
        header, self._header = self._header, b""
        return header + super()._write(samples)

    def _finish(self) -> bytes:
        return bytes(2 * (self._left or 0))


@dataclass(frozen=True)
class _Codec:
    container: str
    codec: str
    sample_format: str  # what we hand the codec: s16/s16p get clipped int16, fltp clipped float
    bit_rate: int | None
    options: dict[str, str] = field(default_factory=dict)


_CODECS: dict[AudioFormat, _Codec] = {
    # No Xing/LAME info frame (its length would be wrong in a stream) and no ID3 tag.
    AudioFormat.MP3: _Codec(
        "mp3", "libmp3lame", "s16p", 64_000, {"write_xing": "0", "id3v2_version": "0"}
    ),
    # Ogg pages are flushed every 100 ms of audio instead of the default 1 s.
    AudioFormat.OPUS: _Codec("ogg", "libopus", "s16", 32_000, {"page_duration": "100000"}),
    AudioFormat.AAC: _Codec("adts", "aac", "fltp", 64_000),
    # No 8 KiB padding block; STREAMINFO cannot carry the length in a stream, which is fine.
    AudioFormat.FLAC: _Codec("flac", "flac", "s16", None, {"metadata_header_padding": "0"}),
}


class _Sink:
    """Write-only, non-seekable file object; muxers see a pipe and stream accordingly."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self._buf += data
        return len(data)

    def drain(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return data


class _PyAVEncoder(Encoder):
    def __init__(self, fmt: AudioFormat, sample_rate: int, input_rate: int) -> None:
        super().__init__(fmt, sample_rate, input_rate)
        spec = _CODECS[fmt]
        self._sink = _Sink()
        self._container = av.open(
            self._sink, "w", format=spec.container, container_options=spec.options
        )
        stream = self._container.add_stream(
            spec.codec, rate=sample_rate, layout="mono", format=spec.sample_format
        )
        assert isinstance(stream, AudioStream)
        self._stream = stream
        if spec.bit_rate is not None:
            # AAC takes at most 6 bits per sample (48 kb/s at 8 kHz); the others need no more.
            self._stream.bit_rate = min(spec.bit_rate, 6 * sample_rate)
        self._container.start_encoding()
        self._frame_size: int = self._stream.codec_context.frame_size
        self._sample_format = spec.sample_format
        self._pending = np.zeros(0, dtype=np.float32)
        self._pts = 0

    def _write(self, samples: np.ndarray) -> bytes:
        pending = np.concatenate((self._pending, samples))
        whole = len(pending) - len(pending) % self._frame_size
        for start in range(0, whole, self._frame_size):
            self._encode_frame(pending[start : start + self._frame_size])
        self._pending = pending[whole:]
        return self._sink.drain()

    def _finish(self) -> bytes:
        if len(self._pending):
            self._encode_frame(self._pending)  # a short last frame is allowed by all four
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()

    def _encode_frame(self, samples: np.ndarray) -> None:
        if self._sample_format == "fltp":
            data = np.clip(samples, -1.0, 1.0)[np.newaxis, :]
        else:
            data = float_to_int16(samples)[np.newaxis, :]
        frame = av.AudioFrame.from_ndarray(data, format=self._sample_format, layout="mono")
        frame.sample_rate = self.sample_rate
        frame.time_base = Fraction(1, self.sample_rate)
        frame.pts = self._pts
        self._pts += len(samples)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)


def create_encoder(
    fmt: AudioFormat | str,
    sample_rate_out: int = 24000,
    input_rate: int = 24000,
    total_samples: int | None = None,
) -> Encoder:
    """Create a streaming encoder.

    Args:
        fmt: Output format (an :class:`AudioFormat` or its name).
        sample_rate_out: Output sample rate; must be allowed for ``fmt``.
        input_rate: Sample rate of the PCM that will be fed to :meth:`Encoder.encode`.
        total_samples: Total input samples, if known in advance. Only WAV uses it: its
            header then carries exact sizes (of the output length after resampling, see
            :func:`~chattts_server.audio.resample.resampled_length`) and the data is cut
            or zero-padded to match; otherwise the header has streaming sizes (0xFFFFFFFF).

    Raises:
        UnsupportedFormatError: unknown ``fmt`` (field ``format``).
        UnsupportedSampleRateError: ``sample_rate_out`` not allowed for ``fmt`` (field
            ``sample_rate``) or ``input_rate`` not a positive integer (field ``input_rate``).
        ValueError: ``total_samples`` is negative.
    """
    fmt = AudioFormat.parse(fmt)
    check_sample_rate(fmt, sample_rate_out)
    if isinstance(input_rate, bool) or not isinstance(input_rate, int) or input_rate <= 0:
        raise UnsupportedSampleRateError(
            f"input rate must be a positive integer, got {input_rate!r}", field="input_rate"
        )
    if total_samples is not None and total_samples < 0:
        raise ValueError(f"total_samples must be >= 0, got {total_samples}")
    if fmt is AudioFormat.WAV:
        return _WavEncoder(sample_rate_out, input_rate, total_samples)
    if fmt is AudioFormat.PCM:
        return _PCMEncoder(fmt, sample_rate_out, input_rate)
    return _PyAVEncoder(fmt, sample_rate_out, input_rate)
