"""POST /v1/audio/speech: OpenAI-compatible, checked with the official openai client too."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from chattts_server.audio import decode_audio
from conftest import LiveServer

from .sse import parse_sse

BODY = {"model": "tts-1", "input": "Hi there. 你好。", "voice": "alloy"}


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_each_response_format_decodes(http: httpx.Client, fmt: str) -> None:
    r = http.post("/v1/audio/speech", json={**BODY, "response_format": fmt})
    assert r.status_code == 200, r.text
    pcm, rate = decode_audio(r.content, fmt)
    assert pcm.size / rate > 0.05


def test_default_is_mp3(http: httpx.Client) -> None:
    r = http.post("/v1/audio/speech", json=BODY)
    assert r.headers["content-type"] == "audio/mpeg"


def test_sse_stream_format(http: httpx.Client) -> None:
    r = http.post(
        "/v1/audio/speech", json={**BODY, "stream_format": "sse", "response_format": "wav"}
    )
    assert r.status_code == 200
    events = parse_sse(r.text)
    assert all(name is None for name, _ in events)  # data-only events, typed inside
    deltas = [e for _, e in events if e["type"] == "speech.audio.delta"]
    assert events[-1][1]["type"] == "speech.audio.done"
    usage = events[-1][1]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    audio = b"".join(base64.b64decode(d["audio"]) for d in deltas)
    pcm, rate = decode_audio(audio, "wav")
    assert rate == 24000 and pcm.size > 0


@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts", "chattts", "x"])
def test_any_model_name_and_wide_speed(http: httpx.Client, model: str) -> None:
    r = http.post(
        "/v1/audio/speech",
        json={**BODY, "model": model, "speed": 4.0, "instructions": "cheerful"},
    )
    assert r.status_code == 200


def test_errors_use_openai_shape(http: httpx.Client) -> None:
    r = http.post("/v1/audio/speech", json={**BODY, "voice": "nobody"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "voice_not_found"
    assert r.json()["error"]["param"] == "voice"
    r = http.post("/v1/audio/speech", json={**BODY, "speed": 5})
    assert r.status_code == 400 and r.json()["error"]["param"] == "speed"
    r = http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field"


def test_official_openai_client_works_unchanged(live: LiveServer, tmp_path) -> None:
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused")
    resp = client.audio.speech.create(
        model="tts-1", voice="nova", input="Hello from the OpenAI client.", response_format="wav"
    )
    pcm, rate = decode_audio(resp.content, "wav")
    assert rate == 24000 and pcm.size > 0
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="echo", input="Streaming works.", response_format="mp3"
    ) as streamed:
        out = tmp_path / "x.mp3"
        streamed.stream_to_file(out)
    assert decode_audio(out.read_bytes(), "mp3")[0].size > 0
    with pytest.raises(openai.NotFoundError) as exc:
        client.audio.speech.create(model="tts-1", voice="nobody", input="x")
    assert "voice" in str(exc.value)
