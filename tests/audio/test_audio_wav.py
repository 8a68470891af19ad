"""WAV header writer and the incremental WavReader."""

from __future__ import annotations

import io
import itertools
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from chattts_server.audio import STREAMING_SIZE, DecodeError, WavReader, create_encoder, wav_header

SAMPLES = (np.sin(np.arange(999) / 7) * 20000).astype(np.int16)
DATA = SAMPLES.astype("<i2").tobytes()


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return struct.pack("<4sI", chunk_id, len(body)) + body + b"\0" * (len(body) % 2)


def _fancy_wav() -> bytes:
    """A header with an 18-byte fmt chunk, an odd-sized LIST chunk and a fact chunk first."""
    fmt = struct.pack("<HHIIHHH", 1, 1, 16000, 32000, 2, 16, 0)
    body = b"".join(
        (
            b"WAVE",
            _chunk(b"LIST", b"INFOISFT\x03\0\0\0ab\0"),  # 15 bytes: padded
            _chunk(b"fmt ", fmt),
            _chunk(b"fact", struct.pack("<I", len(SAMPLES))),
            _chunk(b"data", DATA),
            _chunk(b"LIST", b"trailing"),
        )
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


STREAMS = {
    "exact": wav_header(24000, len(SAMPLES)) + DATA,
    "streamed": wav_header(24000, None) + DATA,
    "zero-size": wav_header(24000, None)[:40] + b"\0\0\0\0" + DATA,
    "fancy": _fancy_wav(),
}


def _read_in_pieces(data: bytes, points: list[int]) -> tuple[np.ndarray, WavReader]:
    reader = WavReader()
    bounds = [0, *points, len(data)]
    out = [reader.feed(data[a:b]) for a, b in itertools.pairwise(bounds)]
    reader.close()
    return np.concatenate(out), reader


@pytest.mark.parametrize("name", list(STREAMS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_reader_any_split(name: str, data: st.DataObject) -> None:
    stream = STREAMS[name]
    points = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    samples, reader = _read_in_pieces(stream, points)
    np.testing.assert_array_equal(samples, SAMPLES)
    assert (reader.channels, reader.bits) == (1, 16)
    assert reader.sample_rate == (16000 if name == "fancy" else 24000)


def test_reader_byte_by_byte_holds_back_odd_byte() -> None:
    reader = WavReader()
    header = STREAMS["streamed"][:44]
    assert len(reader.feed(header)) == 0
    assert len(reader.feed(DATA[:3])) == 1
    assert len(reader.feed(DATA[3:4])) == 1


def test_reader_matches_soundfile() -> None:
    buf = io.BytesIO()
    sf.write(buf, SAMPLES, 22050, subtype="PCM_16", format="WAV")
    samples, reader = _read_in_pieces(buf.getvalue(), [5, 40, 41])
    np.testing.assert_array_equal(samples, sf.read(io.BytesIO(buf.getvalue()), dtype="int16")[0])
    assert reader.sample_rate == 22050


def test_reader_interleaves_stereo() -> None:
    fmt = struct.pack("<HHIIHH", 1, 2, 8000, 32000, 4, 16)
    stereo = np.arange(10, dtype="<i2").tobytes()
    body = b"WAVE" + _chunk(b"fmt ", fmt) + _chunk(b"data", stereo)
    samples, reader = _read_in_pieces(b"RIFF" + struct.pack("<I", len(body)) + body, [47, 49])
    assert reader.channels == 2
    np.testing.assert_array_equal(samples, np.arange(10))


@pytest.mark.parametrize(
    "stream",
    [
        STREAMS["exact"][:30],  # inside the header
        STREAMS["streamed"] + b"\x01",  # dangling byte
        STREAMS["exact"][:-2],  # data chunk shorter than declared
    ],
)
def test_reader_close_rejects_incomplete(stream: bytes) -> None:
    reader = WavReader()
    reader.feed(stream)
    with pytest.raises(DecodeError) as info:
        reader.close()
    assert info.value.code == "decode_error"


@pytest.mark.parametrize(
    "stream",
    [
        b"ID3\x04" + bytes(40),  # not RIFF
        STREAMS["exact"][:20] + struct.pack("<H", 3) + STREAMS["exact"][22:],  # IEEE float
        STREAMS["exact"][:34] + struct.pack("<H", 8) + STREAMS["exact"][36:],  # 8-bit
        STREAMS["exact"][:12] + STREAMS["exact"][36:],  # data before fmt
    ],
)
def test_reader_rejects_unsupported(stream: bytes) -> None:
    with pytest.raises(DecodeError):
        WavReader().feed(stream)


def test_header_sizes() -> None:
    riff, riff_size, _, data_id, data_size = struct.unpack_from("<4sI4s24x4sI", wav_header(8000, 5))
    assert (riff, riff_size, data_id, data_size) == (b"RIFF", 46, b"data", 10)
    streamed = wav_header(8000, None)
    assert struct.unpack_from("<I", streamed, 4)[0] == STREAMING_SIZE
    assert struct.unpack_from("<I", streamed, 40)[0] == STREAMING_SIZE
    info = sf.info(io.BytesIO(wav_header(8000, 5) + bytes(10)))
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 5)
    with pytest.raises(ValueError):
        wav_header(8000, 2**31)


@pytest.mark.parametrize(("rate", "fed"), [(24000, 72001), (44100, 72001), (8000, 100), (48000, 0)])
def test_encoder_header_matches_data(rate: int, fed: int) -> None:
    total = 72001
    encoder = create_encoder("wav", sample_rate_out=rate, total_samples=total)
    signal = np.full(fed, 0.25, dtype=np.float32)
    data = b"".join(encoder.encode(c) for c in np.array_split(signal, 7)) + encoder.flush()
    # The header is authoritative: a short feed is zero-padded to the announced length.
    assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    assert len(data) - 44 == 2 * round(total * rate / 24000)
