"""Every call against the real app on the tiny model: the blocking client over the loopback
server, the asyncio client in-process (ASGI). Audio is noise; its structure is checked."""

from __future__ import annotations

import io
import logging
import wave
from pathlib import Path

import httpx
import pytest

from chattts_server.client import (
    AsyncClient,
    Audio,
    AudioChunk,
    BadRequestError,
    Client,
    Done,
    NotFoundError,
    Progress,
    StreamEvent,
)
from chattts_server.client.wav import header
from conftest import LiveServer, wait_idle
from streamtool import assert_stream_matches

TEXT = "Hello world. 你好，世界。"
PARAMS = {"seed": 5, "manual_seed": 3}
MAGIC = {"wav": b"RIFF", "flac": b"fLaC", "opus": b"OggS"}


def wav_frames(data: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


def check_stream(events: list[StreamEvent], pcm: Audio) -> None:
    """Typed, in order, ending in Done; the chunks add up to the non-streamed PCM."""
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert isinstance(events[-1], Done) and not any(isinstance(e, Done) for e in events[:-1])
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(c.sample_rate == 24000 for c in chunks)
    assert_stream_matches(b"".join(c.pcm for c in chunks), pcm.data)
    assert progress[-1].sentences_done == progress[-1].sentences_total == 2
    done = events[-1]
    assert done.finish_reason in ("stop", "length")
    assert abs(done.audio_duration_ms - len(pcm.data) / 48) <= 1


# --- blocking client over loopback -------------------------------------------------------------


def test_sync_synthesize_in_several_formats(sync_client: Client) -> None:
    pcm = sync_client.synthesize(TEXT, format="pcm", **PARAMS)
    assert (pcm.format, pcm.sample_rate, pcm.fallback) == ("pcm", 24000, False)
    assert pcm.duration == len(pcm.data) / 48000 > 0.5 and len(pcm.request_id or "") == 32
    wav = sync_client.synthesize(TEXT, **PARAMS)
    assert wav.format == "wav" and wav_frames(wav.data) == (24000, pcm.data)
    assert wav.duration == pcm.duration
    resampled = sync_client.synthesize(TEXT, format="wav", sample_rate=16000, **PARAMS)
    assert resampled.sample_rate == 16000 and abs(resampled.duration - pcm.duration) < 0.01
    for fmt in ("mp3", "flac", "opus", "aac"):
        audio = sync_client.synthesize(TEXT, format=fmt, **PARAMS)
        assert audio.format == fmt and audio.duration is None and len(audio.data) > 100
        assert audio.data.startswith(MAGIC.get(fmt, b""))


def test_sync_stream_equals_synthesize(sync_client: Client) -> None:
    pcm = sync_client.synthesize(TEXT, format="pcm", **PARAMS)
    events = list(sync_client.stream(TEXT, **PARAMS))
    check_stream(events, pcm)


def test_sync_stream_to_writes_a_valid_wav(sync_client: Client, tmp_path: Path) -> None:
    pcm = sync_client.synthesize(TEXT, format="pcm", **PARAMS)
    target = tmp_path / "out.wav"
    done = sync_client.stream_to(target, TEXT, **PARAMS)
    data = target.read_bytes()
    assert data[:44] == header(24000, len(pcm.data))  # exact sizes patched in
    rate, frames = wav_frames(data)
    assert rate == 24000
    assert_stream_matches(frames, pcm.data)
    assert done.request_id and done.audio_duration_ms > 0


def test_sync_voices_health_and_errors(sync_client: Client) -> None:
    voices = {v.id: v for v in sync_client.voices.list()}
    assert voices["alloy"].kind == "builtin" and voices["alloy"].seed == 1001
    health = sync_client.health()
    assert health.ready and health.status == "ready" and health.model is not None
    assert health.model["test_model"] is True and health.model["sample_rate"] == 24000
    with pytest.raises(NotFoundError) as info:
        sync_client.synthesize("hi", voice="ghost")
    assert (info.value.code, info.value.param, info.value.status) == (
        "voice_not_found", "voice", 404,
    )  # fmt: skip
    with pytest.raises(BadRequestError) as bad:
        list(sync_client.stream("   "))
    assert (bad.value.code, bad.value.param) == ("empty_text", "text")
    assert sync_client.breaker is not None and sync_client.breaker.state == "closed"


class RecordingHTTP(httpx.HTTPTransport):
    """Remembers the X-Request-ID of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.ids.append(request.headers["x-request-id"])
        return super().handle_request(request)


def test_sync_request_ids_correlate_with_the_server_log(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    transport = RecordingHTTP()
    with Client(live.url, transport=transport) as client:
        done = list(client.stream("Hi.", seed=1))[-1]
        with pytest.raises(NotFoundError) as info:
            client.synthesize("hi", voice="ghost")
    wait_idle(live)
    assert isinstance(done, Done)
    assert transport.ids == [done.request_id, info.value.request_id]
    logged = [getattr(r, "fields", {}).get("request_id") for r in caplog.records]
    assert set(transport.ids) <= set(logged)


# --- asyncio client in-process -----------------------------------------------------------------


class Recording(httpx.ASGITransport):
    """Remembers the X-Request-ID of each request."""

    ids: list[str]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.ids.append(request.headers["x-request-id"])
        return await super().handle_async_request(request)


async def test_async_synthesize_stream_and_stream_to(asgi_app: object) -> None:
    transport = Recording(app=asgi_app)
    transport.ids = []
    async with AsyncClient("http://tts.test", transport=transport) as client:
        pcm = await client.synthesize(TEXT, format="pcm", **PARAMS)
        assert pcm.request_id == transport.ids[-1]
        wav = await client.synthesize(TEXT, format="wav", **PARAMS)
        assert wav_frames(wav.data) == (24000, pcm.data)
        mp3 = await client.synthesize(TEXT, format="mp3", **PARAMS)
        assert mp3.format == "mp3" and mp3.sample_rate == 24000 and len(mp3.data) > 100
        events = [e async for e in client.stream(TEXT, **PARAMS)]
        check_stream(events, pcm)
        assert isinstance(events[-1], Done) and events[-1].request_id == transport.ids[-1]
        out = io.BytesIO()
        await client.stream_to(out, TEXT, **PARAMS)
        data = out.getvalue()
        assert data[:44] == header(24000, len(pcm.data))
        assert_stream_matches(data[44:], pcm.data)


async def test_async_voices_health_and_errors(async_client: AsyncClient) -> None:
    assert "echo" in {v.id for v in await async_client.voices.list()}
    health = await async_client.health()
    assert health.ready and health.model is not None and health.model["test_model"] is True
    with pytest.raises(BadRequestError) as info:
        await async_client.synthesize("hi", seed=1, voice="alloy")
    assert (info.value.code, info.value.param) == ("conflicting_voice", "seed")
    with pytest.raises(NotFoundError):
        [e async for e in async_client.stream("hi", voice="ghost")]
