"""POST /v1/tts against the live app on the tiny model: every response mode, decoded."""

from __future__ import annotations

import base64
import struct

import httpx
import numpy as np
import pytest

from chattts_server.audio import WavReader, decode_audio, float_to_int16, int16_to_float
from chattts_server.engine import ChatTTSEngine, SynthesisRequest
from streamtool import assert_stream_matches

from .sse import parse_sse

BODY = {"text": "Hello world. 你好，世界。", "seed": 5, "manual_seed": 3}


def wav_samples(data: bytes) -> tuple[np.ndarray, WavReader]:
    reader = WavReader()
    pcm = reader.feed(data)
    reader.close()
    return pcm, reader


@pytest.fixture(scope="module")
def reference(engine: ChatTTSEngine) -> np.ndarray:
    req = SynthesisRequest(BODY["text"], seed=5, manual_seed=3)  # type: ignore[arg-type]
    return float_to_int16(np.concatenate([c.pcm for c in engine.synthesize(req)]))


def test_full_wav_has_exact_length_and_the_engine_samples(
    http: httpx.Client, reference: np.ndarray
) -> None:
    r = http.post("/v1/tts", json=BODY)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WAVE"
    riff_size = struct.unpack("<I", r.content[4:8])[0]
    assert riff_size == len(r.content) - 8  # exact sizes when the whole clip is known
    pcm, reader = wav_samples(r.content)
    assert reader.sample_rate == 24000
    assert np.array_equal(pcm, reference)
    assert r.headers["x-request-id"]


def test_sse_events_concatenate_to_the_non_streamed_audio(
    http: httpx.Client, reference: np.ndarray
) -> None:
    r = http.post("/v1/tts?stream=true", json=BODY, headers={"Accept": "text/event-stream"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.text)
    audio = [e for n, e in events if n == "audio"]
    progress = [e for n, e in events if n == "progress"]
    done = [e for n, e in events if n == "done"]
    assert [a["seq"] for a in audio] == list(range(len(audio)))
    assert all(a["format"] == "pcm_s16le" and a["sample_rate"] == 24000 for a in audio)
    pcm = np.frombuffer(b"".join(base64.b64decode(a["audio"]) for a in audio), "<i2")
    assert_stream_matches(pcm, reference)
    assert progress[-1]["sentences_done"] == progress[-1]["sentences_total"] == 2
    assert progress[-1]["audio_ms"] == round(reference.size / 24)
    assert len(done) == 1 and events[-1][0] == "done"
    d = done[0]
    assert d["request_id"] == r.headers["x-request-id"]
    assert d["audio_duration_ms"] == round(reference.size / 24)
    assert d["time_to_first_audio_ms"] <= d["elapsed_ms"]
    assert d["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    ("body", "headers"),
    [({"format": "wav"}, {}), ({}, {"Accept": "audio/wav"})],
    ids=["format", "accept"],
)
def test_chunked_wav_stream_uses_the_streaming_header(
    http: httpx.Client, reference: np.ndarray, body: dict, headers: dict
) -> None:
    with http.stream(
        "POST", "/v1/tts", json={**BODY, **body, "stream": True}, headers=headers
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/wav"
        assert "content-length" not in r.headers
        data = b"".join(r.iter_bytes())
    assert struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF
    pcm, _ = wav_samples(data)
    assert_stream_matches(pcm, reference)


@pytest.mark.parametrize("fmt", ["wav", "pcm", "mp3", "opus", "flac", "aac"])
def test_every_format_decodes(http: httpx.Client, reference: np.ndarray, fmt: str) -> None:
    r = http.post("/v1/tts", json={**BODY, "format": fmt})
    assert r.status_code == 200, r.text
    pcm, rate = decode_audio(r.content, fmt)
    seconds = pcm.size / rate
    assert abs(seconds - reference.size / 24000) < 0.15
    if fmt in ("wav", "pcm", "flac"):
        assert np.array_equal(float_to_int16(pcm), reference)


def test_accept_header_picks_the_format(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json=BODY, headers={"Accept": "audio/flac;q=0.5, audio/mpeg"})
    assert r.headers["content-type"] == "audio/mpeg"
    r = http.post("/v1/tts", json=BODY, headers={"Accept": "audio/L16;rate=16000"})
    assert r.status_code == 200 and r.headers["x-sample-rate"] == "16000"


def test_sample_rate_resamples(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post("/v1/tts", json={**BODY, "sample_rate": 16000})
    pcm, reader = wav_samples(r.content)
    assert reader.sample_rate == 16000
    assert abs(pcm.size - reference.size * 2 / 3) <= 2


def test_unknown_extensions_are_listed(http: httpx.Client) -> None:
    r = http.post(
        "/v1/tts",
        json={**BODY, "extensions": {"max_new_tokens": 8, "style": "x", "foo": 1}},
    )
    assert r.status_code == 200
    assert r.headers["x-ignored-fields"] == "extensions.foo,extensions.style"


def test_seed_voice_and_builtin_voice(http: httpx.Client) -> None:
    a = http.post("/v1/tts", json={**BODY, "seed": None, "voice": "seed:5"})
    b = http.post("/v1/tts", json=BODY)
    assert a.content == b.content
    c = http.post("/v1/tts", json={**BODY, "seed": None, "voice": "alloy"})
    assert c.status_code == 200 and c.content != b.content


def test_pcm_roundtrip_helper_sanity() -> None:
    x = np.array([0, 1000, -1000], np.int16)
    assert np.array_equal(float_to_int16(int16_to_float(x)), x)


def test_full_response_reports_its_duration(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post("/v1/tts", json={**BODY, "format": "mp3"})
    assert int(r.headers["x-audio-duration-ms"]) == round(reference.size / 24)


def test_sse_ignores_and_lists_an_audio_format(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post(
        "/v1/tts?stream=true",
        json={**BODY, "format": "opus", "sample_rate": 44100},
        headers={"Accept": "text/event-stream"},
    )
    assert r.status_code == 200 and r.headers["x-ignored-fields"] == "format"
    audio = [e for n, e in parse_sse(r.text) if n == "audio"]
    assert audio and all(a["sample_rate"] == 44100 for a in audio)
