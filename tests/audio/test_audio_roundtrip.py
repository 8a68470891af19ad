"""Encode -> decode round trips for every format, fed in random chunkings.

Allowed length change (decoded minus input, at the decoded rate) and why:

* wav, pcm, flac: none; samples must equal the int16-quantized input exactly.
* mp3: LAME's encoder delay (576) plus the decoder's filterbank delay (529) come first,
  1105 samples, because our stream carries no LAME tag to trim them; the end is padded to
  whole frames (576 samples at <= 24 kHz, 1152 above), and LAME may add a frame when
  flushing, so the tail is under 2 frames.
* aac: 1024 samples of encoder priming first (ADTS cannot record it), tail padded to
  whole 1024-sample frames, possibly one more frame from the flush: under 2 frames.
* opus: none. Opus decodes at 48 kHz; the Ogg demuxer drops the OpusHead pre-skip (312
  samples at 48 kHz) and trims the end by the last granule position.

Correlation thresholds, after aligning for the delay by a cross-correlation search over
lags 0..2048: measured over every output rate, a working pipeline gives r > 0.99999 for
MP3 (64 kb/s, 48 kb/s at 8 kHz), r >= 0.9991 for AAC (same rates) and r >= 0.9995 for Opus
(32 kb/s). We require 0.999 for MP3 and 0.995 for AAC and Opus: several times the measured
residual (1 - r), so other codec builds still pass, yet still a signal-to-noise ratio of
at least 20 dB (r^2 / (1 - r^2)); a wrong rate, lost, repeated or reordered chunks,
misaligned frames or wrapped samples fall far below that.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chattts_server.audio import (
    AudioFormat,
    StreamingResampler,
    allowed_sample_rates,
    create_encoder,
    decode_audio,
    float_to_int16,
)

RATE = 24000
SECONDS = 3


def _signal(rate: int = RATE) -> np.ndarray:
    """Two sines under a slow raised-cosine envelope, peak 0.5."""
    t = np.arange(rate * SECONDS) / rate
    envelope = 0.75 - 0.25 * np.cos(2 * np.pi * t / SECONDS)
    tones = 0.6 * np.sin(2 * np.pi * 220 * t) + 0.4 * np.sin(2 * np.pi * 1234.5 * t)
    return (0.5 * envelope * tones).astype(np.float32)


SIGNAL = _signal()
LOSSLESS = (AudioFormat.WAV, AudioFormat.PCM, AudioFormat.FLAC)
# format: (leading delay, tail frame size at 24 kHz output, min correlation)
LOSSY = {
    AudioFormat.MP3: (1105, 576, 0.999),
    AudioFormat.AAC: (1024, 1024, 0.995),
    AudioFormat.OPUS: (0, 0, 0.995),
}
MAX_LAG = 2048


def _encode(fmt: AudioFormat, chunks: list[np.ndarray], rate: int = RATE) -> bytes:
    encoder = create_encoder(fmt, sample_rate_out=rate)
    return b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.flush()


def _resample(x: np.ndarray, out_rate: int) -> np.ndarray:
    resampler = StreamingResampler(RATE, out_rate)
    return np.concatenate((resampler.process(x), resampler.flush()))


def _align(reference: np.ndarray, decoded: np.ndarray) -> tuple[int, float]:
    """Delay of ``decoded`` against ``reference`` in 0..MAX_LAG and their correlation there."""
    size = 1 << (len(reference) + len(decoded)).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(xcorr[: MAX_LAG + 1]))
    segment = decoded[lag : lag + len(reference)]
    return lag, float(np.corrcoef(reference[: len(segment)], segment)[0, 1])


def _check_lossy(fmt: AudioFormat, decoded: np.ndarray, rate: int, reference: np.ndarray) -> None:
    delay, frame, min_corr = LOSSY[fmt]
    if fmt is AudioFormat.MP3 and rate > RATE:
        frame = 1152  # MPEG-1 frames above 24 kHz
    lag, corr = _align(reference, decoded)
    assert lag == delay
    assert corr >= min_corr, corr
    tail = len(decoded) - delay - len(reference)
    assert 0 <= tail < 2 * frame if frame else tail == 0


ONE_SHOT = {fmt: _encode(fmt, [SIGNAL]) for fmt in AudioFormat}

split_points = st.lists(st.integers(0, len(SIGNAL)), max_size=25).map(sorted)


@pytest.mark.parametrize("fmt", list(AudioFormat))
@settings(max_examples=10, deadline=None)
@given(points=split_points)
def test_round_trip_random_chunks(fmt: AudioFormat, points: list[int]) -> None:
    data = _encode(fmt, np.split(SIGNAL, points))
    decoded, rate = decode_audio(data, fmt)
    if fmt in LOSSLESS:
        assert rate == RATE
        np.testing.assert_array_equal(float_to_int16(decoded), float_to_int16(SIGNAL))
    else:
        _check_lossy(fmt, decoded, rate, _resample(SIGNAL, rate))
    # Chunking never changes the output. Only the Ogg stream serial number is random.
    if fmt is AudioFormat.OPUS:
        assert len(data) == len(ONE_SHOT[fmt])
        np.testing.assert_array_equal(decoded, decode_audio(ONE_SHOT[fmt], fmt)[0])
    else:
        assert data == ONE_SHOT[fmt]


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [(fmt, rate) for fmt in AudioFormat for rate in allowed_sample_rates(fmt) if rate != RATE],
)
def test_round_trip_every_rate(fmt: AudioFormat, rate: int) -> None:
    data = _encode(fmt, np.array_split(SIGNAL, 30), rate)
    if fmt is not AudioFormat.OPUS:  # resampling does not depend on the chunking either
        assert data == _encode(fmt, [SIGNAL], rate)
    decoded, decoded_rate = decode_audio(data, fmt, sample_rate=rate)
    reference = _resample(SIGNAL, rate)
    if fmt in LOSSLESS:
        assert decoded_rate == rate
        np.testing.assert_array_equal(float_to_int16(decoded), float_to_int16(reference))
    else:
        assert decoded_rate == (48000 if fmt is AudioFormat.OPUS else rate)
        _check_lossy(fmt, decoded, decoded_rate, _resample(SIGNAL, decoded_rate))


@pytest.mark.parametrize("fmt", list(AudioFormat))
def test_bytes_flow_before_flush(fmt: AudioFormat) -> None:
    encoder = create_encoder(fmt)
    early = b"".join(encoder.encode(chunk) for chunk in np.array_split(SIGNAL, 30))
    late = encoder.flush()
    assert len(early) > 0.8 * (len(early) + len(late))


def test_mp3_has_no_info_frame_or_id3() -> None:
    data = ONE_SHOT[AudioFormat.MP3]
    assert data[:2] == b"\xff\xf3"  # frame sync of an MPEG-2 Layer III frame, no ID3 tag
    assert b"Xing" not in data[:1000]
    assert b"Info" not in data[:1000]


def test_empty_stream() -> None:
    wav = create_encoder(AudioFormat.WAV).flush()
    assert len(wav) == 44
    assert len(decode_audio(wav)[0]) == 0
    assert create_encoder(AudioFormat.PCM).flush() == b""
