"""WAV (RIFF) framing: a header writer for 16-bit mono PCM and an incremental reader."""

from __future__ import annotations

import struct

import numpy as np

from .errors import DecodeError

__all__ = ["STREAMING_SIZE", "WavReader", "wav_header"]

STREAMING_SIZE = 0xFFFFFFFF
"""RIFF/data size written when the length is unknown (the convention OpenAI streams use)."""

_HEADER_BYTES = 44
_PCM = 1


def wav_header(sample_rate: int, num_samples: int | None) -> bytes:
    """Return the 44-byte header of a 16-bit mono PCM WAV file.

    Args:
        sample_rate: Samples per second.
        num_samples: Samples that will follow, or ``None`` when unknown; then the RIFF and
            data sizes are :data:`STREAMING_SIZE` and readers play until the end of stream.

    Raises:
        ValueError: ``num_samples`` is negative or too large for a RIFF file.
    """
    if num_samples is None:
        riff_size = data_size = STREAMING_SIZE
    else:
        data_size = 2 * num_samples
        riff_size = data_size + _HEADER_BYTES - 8
        if num_samples < 0 or riff_size >= STREAMING_SIZE:
            raise ValueError(f"cannot write a WAV header for {num_samples} samples")
    return b"".join(
        (
            struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE"),
            struct.pack("<4sIHHIIHH", b"fmt ", 16, _PCM, 1, sample_rate, 2 * sample_rate, 2, 16),
            struct.pack("<4sI", b"data", data_size),
        )
    )


class WavReader:
    """Incremental decoder of 16-bit PCM WAV bytes arriving in arbitrary pieces.

    Feed bytes as they arrive; each :meth:`feed` returns the int16 samples completed by
    that call (interleaved when ``channels > 1``); a partial sample is held back until the
    next feed. Chunks other than ``fmt `` and ``data`` (``LIST``, ``fact``, ...) are skipped
    along with an odd-sized chunk's pad byte. A data size of 0 or 0xFFFFFFFF means "until
    the end of the stream". Call :meth:`close` at the end to check the stream was complete.

    Attributes:
        sample_rate: From the ``fmt `` chunk, ``None`` until it has been read.
        channels: Likewise.
        bits: Bits per sample, likewise (always 16 once decoding succeeds).
    """

    def __init__(self) -> None:
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.bits: int | None = None
        self._buf = bytearray()
        self._riff_seen = False
        self._data_seen = False
        self._skip = 0  # bytes of the current chunk still to discard
        self._in_data = False
        self._data_left: int | None = None  # bytes left in the data chunk; None: until end

    def feed(self, data: bytes) -> np.ndarray:
        """Consume ``data`` and return the int16 samples it completed (possibly none).

        Raises:
            DecodeError: the bytes are not a 16-bit PCM WAV stream.
        """
        self._buf += data
        out: list[bytes] = []
        while self._step(out):
            pass
        return np.frombuffer(b"".join(out), dtype="<i2").astype(np.int16)

    def close(self) -> None:
        """Declare the end of the stream.

        Raises:
            DecodeError: the stream ended inside the header, mid-sample, or before the
                declared end of the data chunk.
        """
        if not self._data_seen:
            raise DecodeError("WAV stream ended inside the header")
        if self._in_data and self._data_left is not None:
            raise DecodeError("WAV stream ended before the end of its data chunk")
        if self._in_data and self._buf:
            raise DecodeError("WAV stream ended mid-sample")

    def _step(self, out: list[bytes]) -> bool:
        """Consume what the buffer allows; False when more bytes are needed."""
        buf = self._buf
        if not self._riff_seen:
            if len(buf) < 12:
                return False
            riff, _, wave = struct.unpack_from("<4sI4s", buf)
            if riff != b"RIFF" or wave != b"WAVE":
                raise DecodeError("not a WAV stream (no RIFF/WAVE header)")
            del buf[:12]
            self._riff_seen = True
            return True
        if self._skip:
            n = min(self._skip, len(buf))
            del buf[:n]
            self._skip -= n
            return bool(n)
        if self._in_data:
            return self._take_data(out)
        if len(buf) < 8:
            return False
        chunk_id, size = struct.unpack_from("<4sI", buf)
        if chunk_id == b"fmt ":
            if len(buf) < 8 + size:
                return False
            self._parse_fmt(bytes(buf[8 : 8 + size]))
        elif chunk_id == b"data":
            if self.channels is None:
                raise DecodeError("WAV data chunk before fmt chunk")
            self._data_left = None if size in (0, STREAMING_SIZE) else size
            if size % (2 * self.channels) and self._data_left is not None:
                raise DecodeError("WAV data chunk size is not a whole number of samples")
            self._in_data = self._data_seen = True
            del buf[:8]
            return True
        del buf[:8]
        self._skip = size + (size & 1)
        return True

    def _parse_fmt(self, body: bytes) -> None:
        if len(body) < 16:
            raise DecodeError("WAV fmt chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
        if tag != _PCM or bits != 16:
            raise DecodeError(f"only 16-bit PCM WAV is supported (format {tag}, {bits} bits)")
        if channels < 1 or rate < 1:
            raise DecodeError(f"invalid WAV fmt chunk ({channels} channels, {rate} Hz)")
        self.sample_rate, self.channels, self.bits = rate, channels, bits

    def _take_data(self, out: list[bytes]) -> bool:
        assert self.channels is not None
        buf, left = self._buf, self._data_left
        avail = len(buf) if left is None else min(len(buf), left)
        n = avail - avail % (2 * self.channels)
        if n:
            out.append(bytes(buf[:n]))
            del buf[:n]
        if left is None:
            return bool(n)
        self._data_left = left - n
        if self._data_left == 0:
            self._in_data = False
            return True
        return bool(n)
