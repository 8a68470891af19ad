"""Just enough WAV for the SDK: a 16-bit PCM header writer, a streaming file writer, and a
header reader."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from .errors import ProtocolError

__all__ = ["HEADER_BYTES", "UNKNOWN_SIZE", "StreamWriter", "WavInfo", "header", "read_info"]

HEADER_BYTES = 44
UNKNOWN_SIZE = 0xFFFFFFFF
"""The RIFF and data sizes of a header written before the length is known."""


def header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a 16-bit mono PCM WAV file holding ``data_bytes`` bytes of samples.

    ``data_bytes=None`` (length unknown, or too long for RIFF) writes :data:`UNKNOWN_SIZE` for
    both sizes; players then read to the end of the file.
    """
    if data_bytes is None or data_bytes + HEADER_BYTES - 8 >= UNKNOWN_SIZE:
        riff = data = UNKNOWN_SIZE
    else:
        riff, data = data_bytes + HEADER_BYTES - 8, data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", riff, b"WAVE",
        b"fmt ", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16,
        b"data", data,
    )  # fmt: skip


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says; ``data_bytes`` is what the file holds (streamed files may
    declare :data:`UNKNOWN_SIZE`)."""

    sample_rate: int
    channels: int
    bits: int
    data_bytes: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.data_bytes / (self.sample_rate * self.channels * self.bits // 8)


def read_info(data: bytes) -> WavInfo | None:
    """Parse the header of a complete WAV file; ``None`` if it is not a PCM WAV file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, pos)
        pos += 8
        if chunk == b"fmt " and size >= 16 and pos + 16 <= len(data):
            fmt = struct.unpack_from("<HHI6xH", data, pos)
        elif chunk == b"data":
            if fmt is None or fmt[0] != 1 or not fmt[1] or not fmt[2] or fmt[3] % 8:
                return None
            return WavInfo(fmt[2], fmt[1], fmt[3], min(size, len(data) - pos))
        pos += size + (size & 1)
    return None


class StreamWriter:
    """Writes a mono 16-bit WAV file as samples arrive, holding none of them.

    The header goes first with :data:`UNKNOWN_SIZE` sizes; :meth:`close` patches in the exact
    sizes when the file is seekable (and the audio fits a RIFF file).
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._start: int | None = None  # offset of the header in a seekable file
        self.sample_rate: int | None = None
        self.data_bytes = 0

    def write(self, pcm: bytes, sample_rate: int) -> None:
        """Append samples (s16le); the first call writes the header."""
        if self.sample_rate is None:
            if self._file.seekable():
                self._start = self._file.tell()
            self._file.write(header(sample_rate))
            self.sample_rate = sample_rate
        elif sample_rate != self.sample_rate:
            raise ProtocolError(
                f"sample rate changed mid-stream: {self.sample_rate} → {sample_rate}"
            )
        self._file.write(pcm)
        self.data_bytes += len(pcm)

    def close(self, sample_rate: int) -> None:
        """Finish the file; ``sample_rate`` is for the header of a stream that had no audio."""
        if self.sample_rate is None:
            self.write(b"", sample_rate)
        if self._start is not None and self.data_bytes + HEADER_BYTES - 8 < UNKNOWN_SIZE:
            end = self._file.tell()
            self._file.seek(self._start)
            self._file.write(header(self.sample_rate or sample_rate, self.data_bytes))
            self._file.seek(end)
        self._file.flush()
