"""Output formats, their content types and the sample rates each one supports."""

from __future__ import annotations

from enum import StrEnum

from .errors import UnsupportedFormatError, UnsupportedSampleRateError

__all__ = [
    "SUPPORTED_SAMPLE_RATES",
    "AudioFormat",
    "allowed_sample_rates",
    "check_sample_rate",
]

SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
"""Output sample rates offered for any format (subject to :func:`allowed_sample_rates`)."""

# libopus only runs at 8/12/16/24/48 kHz. LAME (MPEG-1/2/2.5) and FFmpeg's AAC cover all of ours.
_OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})


class AudioFormat(StrEnum):
    """An output format, named as in the ``format``/``response_format`` request field.

    Members are in the server's order of preference, which breaks ties in negotiation:
    self-describing containers first, headerless raw PCM last.
    """

    WAV = "wav"
    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    PCM = "pcm"

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` served for this format."""
        return _CONTENT_TYPES[self]

    @classmethod
    def parse(cls, value: AudioFormat | str, *, field: str = "format") -> AudioFormat:
        """Return the format named by ``value`` (case-insensitive).

        Raises:
            UnsupportedFormatError: ``value`` names no format; ``field`` is reported with it.
        """
        try:
            return cls(value.strip().lower())
        except (ValueError, AttributeError):
            names = ", ".join(f.value for f in cls)
            raise UnsupportedFormatError(
                f"unsupported audio format {value!r}; expected one of: {names}", field=field
            ) from None


_CONTENT_TYPES: dict[AudioFormat, str] = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.PCM: "audio/pcm",  # raw signed 16-bit little-endian mono
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/ogg; codecs=opus",  # RFC 7845
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.AAC: "audio/aac",  # ADTS
}


def allowed_sample_rates(fmt: AudioFormat) -> tuple[int, ...]:
    """The output sample rates ``fmt`` supports, ascending."""
    if fmt is AudioFormat.OPUS:
        return tuple(r for r in SUPPORTED_SAMPLE_RATES if r in _OPUS_RATES)
    return SUPPORTED_SAMPLE_RATES


def check_sample_rate(fmt: AudioFormat, sample_rate: int, *, field: str = "sample_rate") -> int:
    """Return ``sample_rate`` if ``fmt`` can be served at it.

    Raises:
        UnsupportedSampleRateError: otherwise, naming ``field``.
    """
    allowed = allowed_sample_rates(fmt)
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int)
        or sample_rate not in allowed
    ):
        rates = ", ".join(map(str, allowed))
        raise UnsupportedSampleRateError(
            f"sample rate {sample_rate!r} is not supported for {fmt.value}; "
            f"expected one of: {rates}",
            field=field,
        )
    return sample_rate
