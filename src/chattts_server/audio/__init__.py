"""Audio output for the speech engine: 24 kHz mono float32 PCM in, the client's format out.

* :func:`negotiate` picks the format from the request's ``format`` field and ``Accept``
  header.
* :func:`create_encoder` returns a streaming :class:`Encoder` (WAV, raw PCM, MP3, Ogg
  Opus, AAC/ADTS, FLAC) that validates, resamples and encodes chunk by chunk, returning
  bytes as soon as the codec emits them.
* :func:`decode_audio` and :class:`WavReader` turn bytes back into samples (for clients and
  tests).

All failures are :class:`AudioError` subclasses with a machine-readable ``code``.
"""

from .decode import decode_audio
from .encoders import Encoder, create_encoder
from .errors import (
    AudioError,
    DecodeError,
    InvalidPCMError,
    NotAcceptableError,
    UnsupportedFormatError,
    UnsupportedSampleRateError,
)
from .formats import SUPPORTED_SAMPLE_RATES, AudioFormat, allowed_sample_rates, check_sample_rate
from .negotiation import Negotiated, negotiate, served_content_types, wants_event_stream
from .pcm import float_to_int16, int16_to_float, validate_pcm
from .resample import StreamingResampler, resampled_length
from .wav import STREAMING_SIZE, WavReader, wav_header

__all__ = [
    "STREAMING_SIZE",
    "SUPPORTED_SAMPLE_RATES",
    "AudioError",
    "AudioFormat",
    "DecodeError",
    "Encoder",
    "InvalidPCMError",
    "Negotiated",
    "NotAcceptableError",
    "StreamingResampler",
    "UnsupportedFormatError",
    "UnsupportedSampleRateError",
    "WavReader",
    "allowed_sample_rates",
    "check_sample_rate",
    "create_encoder",
    "decode_audio",
    "float_to_int16",
    "int16_to_float",
    "negotiate",
    "resampled_length",
    "served_content_types",
    "validate_pcm",
    "wants_event_stream",
    "wav_header",
]
