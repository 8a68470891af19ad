"""StreamingResampler: lengths, chunk independence, frequency preservation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chattts_server.audio import SUPPORTED_SAMPLE_RATES, StreamingResampler, resampled_length

IN_RATE = 24000
SINE_HZ = 1000.0
SINE = np.sin(2 * np.pi * SINE_HZ * np.arange(IN_RATE) / IN_RATE).astype(np.float32) * 0.5


def _run(resampler: StreamingResampler, chunks: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([*(resampler.process(c) for c in chunks), resampler.flush()])


@pytest.mark.parametrize("out_rate", SUPPORTED_SAMPLE_RATES)
def test_length_and_frequency(out_rate: int) -> None:
    out = _run(StreamingResampler(IN_RATE, out_rate), [SINE])
    # soxr rounds the exact length to nearest, so within one sample of input × ratio.
    assert abs(len(out) - len(SINE) * out_rate / IN_RATE) <= 1
    assert len(out) == resampled_length(len(SINE), IN_RATE, out_rate)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * out_rate / len(out)
    assert abs(peak_hz - SINE_HZ) <= out_rate / len(out)  # within one FFT bin (1 Hz)


# Chunked equals one-shot: soxr's stream carries its filter state, so the only possible
# difference is float32 rounding; we allow 1e-6 (observed: bit-identical).
@pytest.mark.parametrize("out_rate", SUPPORTED_SAMPLE_RATES)
@settings(max_examples=10, deadline=None)
@given(points=st.lists(st.integers(0, len(SINE)), max_size=20).map(sorted))
def test_chunked_equals_one_shot(out_rate: int, points: list[int]) -> None:
    one_shot = _run(StreamingResampler(IN_RATE, out_rate), [SINE])
    chunked = _run(StreamingResampler(IN_RATE, out_rate), np.split(SINE, points))
    assert len(chunked) == len(one_shot)
    np.testing.assert_allclose(chunked, one_shot, rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    rates=st.sampled_from(list(itertools.permutations(SUPPORTED_SAMPLE_RATES, 2))),
    length=st.integers(0, 50_000),
)
def test_resampled_length_matches_soxr(rates: tuple[int, int], length: int) -> None:
    in_rate, out_rate = rates
    out = _run(StreamingResampler(in_rate, out_rate), [np.zeros(length, dtype=np.float32)])
    assert len(out) == resampled_length(length, in_rate, out_rate)


def test_identity_passes_through() -> None:
    resampler = StreamingResampler(IN_RATE, IN_RATE)
    np.testing.assert_array_equal(resampler.process(SINE), SINE)
    assert len(resampler.flush()) == 0
