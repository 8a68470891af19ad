"""The I/O-free parts: retry policy, breaker, request building, timeouts, WAV writing."""

from __future__ import annotations

import base64
import io
import struct
import wave

import pytest

from chattts_server.client import CircuitBreaker, CircuitOpenError, RetryPolicy, Timeout
from chattts_server.client._requests import tts_body
from chattts_server.client.wav import UNKNOWN_SIZE, StreamWriter, header, read_info

from .conftest import FakeClock


def test_backoff_is_full_jitter_over_a_capped_exponential() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0)
    assert [policy.delay(n, None, lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(2, None, lambda: 0.25) == 0.5
    assert policy.delay(0, None, lambda: 0.0) == 0.0


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=10.0)

    def no_jitter() -> float:
        raise AssertionError("Retry-After needs no jitter")

    assert policy.delay(0, 4.0, no_jitter) == 4.0
    assert policy.delay(1, 0.0, no_jitter) == 0.0
    assert policy.delay(1, 120.0, no_jitter) == 10.0


def test_breaker_opens_at_the_threshold_and_a_success_resets_the_count() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, clock=clock)
    for _ in range(2):
        assert breaker.acquire() is False
        breaker.failure()
    breaker.success()
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 4
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_in == pytest.approx(6.0)


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown=5.0, clock=clock)
    breaker.failure()
    clock.now += 5
    assert breaker.state == "half-open"
    assert breaker.acquire() is True  # the trial
    with pytest.raises(CircuitOpenError, match="trial request is in flight"):
        breaker.acquire()
    breaker.failure()  # the trial failed: open again, for a full cool-down
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.acquire() is True
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.acquire() is False


def test_breaker_trial_without_a_verdict_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold=1, cooldown=1.0, clock=clock)
    breaker.failure()
    clock.now += 1
    assert breaker.acquire() is True
    breaker.release(True)  # cancelled: neither success nor failure
    assert breaker.state == "half-open"
    assert breaker.acquire() is True


def test_tts_body_maps_params_and_encodes_ref_audio() -> None:
    body = tts_body(
        "hi",
        {"ref_audio": b"\x00RIFF", "ref_text": "hi", "pauses": {"comma": 5}, "seed": None,
         "extensions": {"max_new_tokens": 8}, "top_k": 3},
    )  # fmt: skip
    assert body == {
        "text": "hi",
        "ref_audio": base64.b64encode(b"\x00RIFF").decode(),
        "ref_text": "hi",
        "pauses": {"comma": 5},
        "extensions": {"max_new_tokens": 8},
        "top_k": 3,
    }
    with pytest.raises(TypeError, match="colour"):
        tts_body("hi", {"colour": "blue"})
    with pytest.raises(TypeError, match="bytes"):
        tts_body("hi", {"ref_audio": "clip.wav"})


def test_a_number_as_timeout_is_a_deadline() -> None:
    assert Timeout.of(30) == Timeout(connect=5.0, read=30, total=30)
    assert Timeout.of(2) == Timeout(connect=2, read=2, total=2)
    t = Timeout(connect=1, read=2, total=None)
    assert Timeout.of(t) is t


def test_header_matches_the_stdlib_reader() -> None:
    pcm = struct.pack("<4h", 1, -2, 300, -32768)
    with wave.open(io.BytesIO(header(16000, len(pcm)) + pcm)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(10) == pcm
    streaming = header(24000)
    assert struct.unpack_from("<I", streaming, 4)[0] == UNKNOWN_SIZE
    assert struct.unpack_from("<I", streaming, 40)[0] == UNKNOWN_SIZE
    assert header(24000, 2**32) == streaming  # too long for RIFF: sizes left unknown


def test_read_info_skips_extra_chunks_and_rejects_non_pcm() -> None:
    pcm = b"\x00\x01" * 50
    plain = header(8000, len(pcm)) + pcm
    info = read_info(plain)
    assert info is not None and (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    assert info.duration == pytest.approx(50 / 8000)
    listed = plain[:36] + b"LIST" + struct.pack("<I", 3) + b"abc\x00" + plain[36:]
    assert read_info(listed) == info
    float_fmt = plain[:20] + struct.pack("<H", 3) + plain[22:]
    assert read_info(float_fmt) is None
    assert read_info(b"ID3\x04 not a wav") is None


class Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("sink", [io.BytesIO, Unseekable])
def test_stream_writer_patches_sizes_only_when_it_can_seek(sink: type[io.BytesIO]) -> None:
    out = sink(b"prefix")
    out.seek(0, io.SEEK_END)
    writer = StreamWriter(out)
    writer.write(b"\x01\x00" * 3, 22050)
    writer.write(b"\x02\x00", 22050)
    writer.close(24000)
    data = out.getvalue()[len(b"prefix") :]
    assert data[44:] == b"\x01\x00" * 3 + b"\x02\x00"
    expected = header(22050, 8) if sink is io.BytesIO else header(22050)
    assert data[:44] == expected


def test_stream_writer_without_audio_writes_an_empty_file() -> None:
    out = io.BytesIO()
    StreamWriter(out).close(16000)
    with wave.open(io.BytesIO(out.getvalue())) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 0
