"""Content negotiation: the format field, the Accept header and their conflicts."""

from __future__ import annotations

import pytest

from chattts_server.audio import (
    AudioFormat,
    NotAcceptableError,
    UnsupportedFormatError,
    negotiate,
    served_content_types,
)

WAV, PCM, MP3, OPUS, FLAC, AAC = (
    AudioFormat.WAV,
    AudioFormat.PCM,
    AudioFormat.MP3,
    AudioFormat.OPUS,
    AudioFormat.FLAC,
    AudioFormat.AAC,
)

# (format field, Accept header, expected format, expected sample rate)
CASES = [
    (None, None, WAV, None),
    (None, "", WAV, None),
    (None, "audio/wav", WAV, None),
    (None, "audio/x-wav", WAV, None),
    (None, "audio/wave", WAV, None),
    (None, "audio/mpeg", MP3, None),
    (None, "audio/mp3", MP3, None),
    (None, "audio/ogg", OPUS, None),
    (None, "audio/opus", OPUS, None),
    (None, "audio/flac", FLAC, None),
    (None, "audio/aac", AAC, None),
    (None, "audio/pcm", PCM, None),
    (None, "AUDIO/MPEG", MP3, None),
    (None, "audio/L16;rate=24000", PCM, 24000),
    (None, "audio/L16; rate=16000; channels=1", PCM, 16000),
    (None, "audio/L16", PCM, None),
    (None, "audio/L16;rate=11025, audio/flac;q=0.1", FLAC, None),  # rate we do not offer
    (None, "audio/*", WAV, None),
    (None, "*/*", WAV, None),
    (None, "application/octet-stream", WAV, None),
    (None, "text/event-stream", WAV, None),  # SSE is the HTTP layer's business
    (None, "text/event-stream, audio/flac", FLAC, None),
    (None, "application/json, audio/mpeg;q=0.1", MP3, None),
    (None, "audio/mpeg, audio/ogg", MP3, None),  # equal q: earlier entry
    (None, "audio/ogg, audio/mpeg", OPUS, None),
    (None, "audio/mpeg;q=0.5, audio/ogg;q=0.9", OPUS, None),
    (None, "audio/*;q=0.8, audio/aac", AAC, None),
    (None, "audio/*, audio/wav;q=0", MP3, None),  # wav excluded: first in server order
    (None, "audio/mpeg;q=0.5, audio/*;q=0.6", WAV, None),  # wildcard has higher q
    (None, "audio/flac;q=bogus, audio/aac", AAC, None),  # malformed entry skipped
    ("mp3", None, MP3, None),
    ("mp3", "audio/mpeg", MP3, None),
    ("mp3", "audio/*", MP3, None),
    ("mp3", "*/*", MP3, None),
    ("mp3", "application/octet-stream", MP3, None),
    ("mp3", "text/event-stream", MP3, None),
    ("OPUS", "audio/ogg;q=0.3", OPUS, None),
    ("pcm", "audio/L16;rate=8000", PCM, 8000),
    ("wav", "audio/L16;rate=8000, audio/*", WAV, None),
]


@pytest.mark.parametrize(("fmt", "accept", "expected", "rate"), CASES)
def test_negotiate(
    fmt: str | None, accept: str | None, expected: AudioFormat, rate: int | None
) -> None:
    result = negotiate(fmt, accept)
    assert result.format is expected
    assert result.content_type == expected.content_type
    assert result.sample_rate == rate


def test_default_format() -> None:
    assert negotiate(None, None, default="mp3").format is MP3
    assert negotiate(None, "audio/*", default=AudioFormat.FLAC).format is FLAC
    assert negotiate(None, "audio/mpeg, audio/*", default="flac").format is MP3


NOT_ACCEPTABLE = [
    ("mp3", "audio/wav"),
    ("mp3", "audio/*, audio/mpeg;q=0"),
    ("flac", "audio/L16;rate=24000"),
    (None, "application/json"),
    (None, "text/html, text/event-stream"),
    (None, "audio/wav;q=0"),
    (None, "audio/*;q=0, */*;q=0"),
    (None, "video/mp4, audio/x-unknown"),
    (None, "audio/L16;rate=11025"),
]


@pytest.mark.parametrize(("fmt", "accept"), NOT_ACCEPTABLE)
def test_not_acceptable(fmt: str | None, accept: str) -> None:
    with pytest.raises(NotAcceptableError) as info:
        negotiate(fmt, accept)
    assert info.value.code == "not_acceptable"
    assert info.value.available == served_content_types()
    assert "audio/mpeg" in info.value.available


def test_unknown_format_field() -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        negotiate("vorbis", "audio/*")
    assert (info.value.code, info.value.field) == ("unsupported_format", "format")
