"""Exceptions raised by :mod:`chattts_server.audio`.

Every error carries a machine-readable ``code`` and, where the problem comes from one
request field, the name of that ``field``::

    AudioError                     code: audio_error
    ├── InvalidPCMError            code: invalid_pcm
    ├── UnsupportedFormatError     code: unsupported_format
    ├── UnsupportedSampleRateError code: unsupported_sample_rate
    ├── NotAcceptableError         code: not_acceptable
    └── DecodeError                code: decode_error
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AudioError",
    "DecodeError",
    "InvalidPCMError",
    "NotAcceptableError",
    "UnsupportedFormatError",
    "UnsupportedSampleRateError",
]


class AudioError(Exception):
    """Base class of every audio error.

    Attributes:
        code: Machine-readable error code (stable, suitable for API responses).
        field: Name of the request field at fault, or ``None``.
    """

    code = "audio_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidPCMError(AudioError):
    """PCM samples are not a finite 1-D float32/float64/int16 array."""

    code = "invalid_pcm"


class UnsupportedFormatError(AudioError):
    """The requested output format is not one we serve."""

    code = "unsupported_format"


class UnsupportedSampleRateError(AudioError):
    """The sample rate is not supported, in general or by the chosen format."""

    code = "unsupported_sample_rate"


class NotAcceptableError(AudioError):
    """Nothing we serve satisfies the ``Accept`` header (HTTP 406).

    Attributes:
        available: The content types we can serve.
    """

    code = "not_acceptable"

    def __init__(self, message: str, available: Iterable[str]) -> None:
        super().__init__(message)
        self.available = tuple(available)


class DecodeError(AudioError):
    """Bytes could not be decoded as audio."""

    code = "decode_error"
