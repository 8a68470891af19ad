"""PCM validation and conversion, and bad input through the whole encoder API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chattts_server.audio import (
    AudioError,
    AudioFormat,
    DecodeError,
    InvalidPCMError,
    NotAcceptableError,
    UnsupportedFormatError,
    UnsupportedSampleRateError,
    create_encoder,
    decode_audio,
    float_to_int16,
    int16_to_float,
    validate_pcm,
)


def test_float_to_int16_saturates() -> None:
    x = np.array([1.5, -1.5, 1.0, -1.0, 0.0, 0.5, 1e30, -1e30, 32767.5 / 32768])
    # -1.0 maps to -32768: the scale is 32768 so int16 -> float -> int16 is exact.
    np.testing.assert_array_equal(
        float_to_int16(x), [32767, -32768, 32767, -32768, 0, 16384, 32767, -32768, 32767]
    )


def test_int16_round_trip_is_exact() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    back = int16_to_float(every)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(float_to_int16(back), every)


def test_validate_accepts_and_normalises() -> None:
    assert validate_pcm(np.zeros(0, dtype=np.float32)).dtype == np.float32
    assert validate_pcm(np.ones(3, dtype=np.float64)).dtype == np.float32
    np.testing.assert_array_equal(validate_pcm(np.array([16384], dtype=np.int16)), [0.5])


BAD_PCM: dict[str, Any] = {
    "nan": np.array([0.0, np.nan], dtype=np.float32),
    "inf": np.array([np.inf], dtype=np.float64),
    "complex": np.zeros(4, dtype=np.complex64),
    "object": np.array([0.1, 0.2], dtype=object),
    "int64": np.zeros(4, dtype=np.int64),
    "2-D": np.zeros((2, 4), dtype=np.float32),
    "list": [0.0, 0.1],
}


@pytest.mark.parametrize("name", list(BAD_PCM))
@pytest.mark.parametrize("fmt", list(AudioFormat))
def test_bad_pcm_is_rejected_without_corrupting_the_stream(fmt: AudioFormat, name: str) -> None:
    good = np.sin(np.arange(4800) / 9).astype(np.float32) * 0.5
    reference = create_encoder(fmt)
    expected = reference.encode(good) + reference.encode(good) + reference.flush()

    encoder = create_encoder(fmt)
    out = encoder.encode(good)
    with pytest.raises(InvalidPCMError) as info:
        encoder.encode(BAD_PCM[name])
    assert (info.value.code, info.value.field) == ("invalid_pcm", None)
    out += encoder.encode(good) + encoder.flush()
    if fmt is AudioFormat.OPUS:  # random Ogg serial number: compare the audio
        np.testing.assert_array_equal(decode_audio(out, fmt)[0], decode_audio(expected, fmt)[0])
    else:
        assert out == expected


@pytest.mark.parametrize("value", ["ogg", "", "mp4", "WAV2", 3])
def test_unknown_format(value: object) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        create_encoder(value)  # type: ignore[arg-type]
    assert (info.value.code, info.value.field) == ("unsupported_format", "format")


def test_format_names_are_case_insensitive() -> None:
    assert create_encoder(" MP3 ").content_type == "audio/mpeg"


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [("wav", 12345), ("mp3", 0), ("pcm", 24000.0), ("opus", 44100), ("opus", 22050)],
)
def test_unsupported_sample_rate(fmt: str, rate: int) -> None:
    with pytest.raises(UnsupportedSampleRateError) as info:
        create_encoder(fmt, sample_rate_out=rate)
    assert (info.value.code, info.value.field) == ("unsupported_sample_rate", "sample_rate")


def test_bad_input_rate() -> None:
    with pytest.raises(UnsupportedSampleRateError) as info:
        create_encoder("wav", input_rate=0)
    assert info.value.field == "input_rate"


def test_encoder_is_single_use() -> None:
    encoder = create_encoder("pcm")
    encoder.flush()
    with pytest.raises(RuntimeError):
        encoder.encode(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("fmt", [None, "wav", "mp3", "opus", "aac", "flac", "pcm"])
def test_decode_garbage(fmt: str | None) -> None:
    garbage = b"this is not audio at all" * 50 + b"!"  # odd length, so not even raw PCM
    with pytest.raises(DecodeError) as info:
        decode_audio(garbage, fmt)
    assert info.value.code == "decode_error"


def test_hierarchy() -> None:
    for cls in (
        InvalidPCMError,
        UnsupportedFormatError,
        UnsupportedSampleRateError,
        NotAcceptableError,
        DecodeError,
    ):
        assert issubclass(cls, AudioError)
    assert NotAcceptableError("no", ["audio/wav"]).available == ("audio/wav",)
