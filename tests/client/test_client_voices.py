"""``client.voices``: the voice library against the real app (tiny model) — blocking over the
loopback server, asyncio in-process — and the wire format and retry rule of its calls against
scripted fake servers."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import random
import struct
import time
import uuid
import wave
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chattts_server.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    ConnectError,
    ImportResult,
    NotFoundError,
    ProtocolError,
    ServiceUnavailableError,
    TimeoutError,
    TransportError,
    Voice,
)
from chattts_server.client.errors import APIStatusError

from .conftest import FakeClock, Script, audio, call, error

MakeClient = Callable[..., Client | AsyncClient]


def unique() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def reference_clip(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV file of noise, written with the stdlib."""
    rng = random.Random(7)
    samples = [
        max(-32768, min(32767, round(rng.gauss(0, 3000)))) for _ in range(int(seconds * rate))
    ]
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def wav_params(data: bytes) -> tuple[int, int, int, int]:
    """(channels, sample width, rate, frames) from the header, read by the stdlib."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()


# --- blocking client over loopback -------------------------------------------------------------


def test_create_list_get_update_sample_delete(sync_client: Client) -> None:
    name = unique()
    voices = sync_client.voices
    created = voices.create(name, seed=31, description="calm", language="en",
                            defaults={"speed": 1.5, "top_k": 10})  # fmt: skip
    assert (created.id, created.kind, created.seed) == (name, "seed", 31)
    assert (created.description, created.language) == ("calm", "en")
    assert created.defaults == {"speed": 1.5, "top_k": 10}
    assert created.model_fingerprint and abs(time.time() - (created.created_at or 0)) < 60

    listed = {v.id: v for v in voices.list()}
    assert listed[name] == created and listed["alloy"].kind == "builtin"
    assert voices.get(name) == created

    changed = voices.update(name, description="calmer", defaults={"speed": 0.8})
    assert (changed.description, changed.language, changed.defaults) == ("calmer", "en",
                                                                        {"speed": 0.8})  # fmt: skip
    cleared = voices.update(name, language=None, defaults=None)  # None clears; the rest stays
    assert (cleared.description, cleared.language, cleared.defaults) == ("calmer", None, {})
    assert voices.get(name) == cleared

    sample = voices.sample(name)
    assert sample.format == "wav" and sample.sample_rate == 24000
    channels, width, rate, frames = wav_params(sample.data)
    assert (channels, width, rate) == (1, 2, 24000) and frames > 0
    assert voices.sample(name).data == sample.data  # a sample is deterministic

    voices.delete(name)
    with pytest.raises(NotFoundError) as info:
        voices.get(name)
    assert (info.value.status, info.value.code, info.value.param) == (404, "voice_not_found",
                                                                      "name")  # fmt: skip
    with pytest.raises(NotFoundError):
        voices.delete(name)
    assert name not in {v.id for v in voices.list()}


def test_a_seed_voice_sounds_like_its_seed(sync_client: Client) -> None:
    name = unique()
    sync_client.voices.create(name, seed=31)
    by_name = sync_client.synthesize("Voice test.", voice=name, manual_seed=4, format="pcm")
    by_seed = sync_client.synthesize("Voice test.", seed=31, manual_seed=4, format="pcm")
    other = sync_client.synthesize("Voice test.", seed=32, manual_seed=4, format="pcm")
    assert len(by_name.data) > 0 and by_name.data == by_seed.data != other.data


def test_a_reference_clip_voice(sync_client: Client) -> None:
    name = unique()
    voice = sync_client.voices.create(name, ref_audio=reference_clip(), ref_text="参考音频")
    assert (voice.kind, voice.seed) == ("ref_audio", None)
    first = sync_client.synthesize("Hello.", voice=name, manual_seed=1, format="pcm")
    assert len(first.data) > 0
    again = sync_client.synthesize("Hello.", voice=name, manual_seed=1, format="pcm")
    assert again.data == first.data
    mp3 = sync_client.voices.sample(name, format="mp3", text="Short.", lang="en")
    assert mp3.format == "mp3" and len(mp3.data) > 100 and not mp3.data.startswith(b"RIFF")


def test_taken_names_conflict_and_bad_voices_are_rejected(sync_client: Client) -> None:
    name = unique()
    sync_client.voices.create(name, seed=1)
    for taken in (name, "alloy"):
        with pytest.raises(ConflictError) as info:
            sync_client.voices.create(taken, seed=2)
        assert (info.value.status, info.value.code, info.value.param) == (409, "voice_exists",
                                                                          "name")  # fmt: skip
    assert sync_client.voices.get(name).seed == 1  # the first one stays
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({}, "missing_field", "seed"),
        ({"seed": 1, "spk_emb": "x"}, "conflicting_voice", "spk_emb"),
        ({"ref_audio": reference_clip()}, "missing_field", "ref_text"),
        ({"seed": 1, "defaults": {"speed": 9.0}}, "invalid_value", "defaults.speed"),
    ]
    for kwargs, code, param in bad:
        with pytest.raises(BadRequestError) as bad_info:
            sync_client.voices.create(unique(), **kwargs)
        assert (bad_info.value.code, bad_info.value.param) == (code, param)
    with pytest.raises(BadRequestError) as dots:  # escaped: a name, not a step up the path
        sync_client.voices.get("..")
    assert dots.value.code == "invalid_voice_name"


def test_export_delete_import_brings_a_voice_back(sync_client: Client) -> None:
    voices = sync_client.voices
    name = unique()
    created = voices.create(name, seed=12, description="exported", defaults={"top_p": 0.5})
    document = voices.export()
    assert (document["format"], document["version"]) == ("chattts-server-voices", 1)
    mine = {**document, "voices": [v for v in document["voices"] if v["name"] == name]}
    assert len(mine["voices"]) == 1
    voices.delete(name)

    assert voices.import_(mine) == ImportResult(imported=(name,), skipped=())
    assert voices.get(name) == created  # everything back, created_at included
    assert voices.import_(mine) == ImportResult(imported=(), skipped=(name,))
    assert voices.import_(mine, overwrite=True) == ImportResult(imported=(name,), skipped=())
    everything = voices.import_(json.loads(json.dumps(document)))  # survives a JSON file
    assert name in everything.skipped and not everything.imported
    voices.delete(name)
    broken = {**document, "voices": [*mine["voices"], {"name": unique(), "kind": "seed"}]}
    with pytest.raises(BadRequestError) as info:
        voices.import_(broken)
    assert info.value.param is not None and info.value.param.startswith("voices.1.")
    with pytest.raises(NotFoundError):  # all or nothing: the valid voice was not written
        voices.get(name)


# --- asyncio client in-process -----------------------------------------------------------------


async def test_async_voice_library(async_client: AsyncClient) -> None:
    voices = async_client.voices
    name = unique()
    created = await voices.create(name, seed=8, language="zh", defaults={"refine_text": False})
    assert (created.kind, created.seed, created.language) == ("seed", 8, "zh")
    assert created.defaults == {"refine_text": False}
    assert created in await voices.list()
    with pytest.raises(ConflictError):
        await voices.create(name, seed=9)
    assert (await voices.update(name, description="async")).description == "async"
    assert (await voices.get(name)).description == "async"
    sample = await voices.sample(name, format="pcm", text="你好。")
    assert sample.format == "pcm" and sample.duration and sample.duration > 0
    document = await voices.export()
    await voices.delete(name)
    with pytest.raises(NotFoundError):
        await voices.get(name)
    mine = {**document, "voices": [v for v in document["voices"] if v["name"] == name]}
    assert await voices.import_(mine) == ImportResult(imported=(name,), skipped=())
    assert await voices.get(name) == dataclasses.replace(created, description="async")


async def test_async_reference_clip_voice(async_client: AsyncClient) -> None:
    name = unique()
    voice = await async_client.voices.create(name, ref_audio=reference_clip(), ref_text="参考")
    assert voice.kind == "ref_audio"
    await async_client.voices.delete(name)
    assert name not in {v.id for v in await async_client.voices.list()}


# --- the wire, against scripted fake servers ---------------------------------------------------

VOICE = {"id": "narrator", "kind": "seed", "seed": 4, "description": None, "language": "en",
         "defaults": {"speed": 0.9}, "model_fingerprint": "abc",
         "created_at": 1700000000.5}  # fmt: skip
DOCUMENT = {"format": "chattts-server-voices", "version": 1, "voices": [{"name": "narrator"}]}


def ok(body: Any = VOICE, status: int = 200) -> httpx.Response:
    return httpx.Response(status) if body is None else httpx.Response(status, json=body)


async def test_requests_on_the_wire(make_client: MakeClient) -> None:
    script = Script(
        ok(status=201), ok(), ok(), httpx.Response(204), audio(b"ID3", "audio/mpeg"),
        ok(DOCUMENT), ok({"imported": [], "skipped": ["narrator"]}),
        ok({"object": "list", "data": [VOICE]}),
    )  # fmt: skip
    client = make_client(script)
    clip = b"RIFF\x00clip"
    voice = await call(client, "voices.create", "narrator", ref_audio=clip, ref_text="hi",
                       defaults={"speed": 0.9})  # fmt: skip
    assert voice == Voice("narrator", "seed", 4, None, "en", {"speed": 0.9}, "abc", 1700000000.5)
    await call(client, "voices.get", "a.b/c d")
    await call(client, "voices.update", "narrator", description=None, defaults={"top_k": 3})
    assert await call(client, "voices.delete", "narrator") is None
    mp3 = await call(client, "voices.sample", "narrator", format="mp3", text="Hi & bye", lang="en")
    assert mp3.format == "mp3" and mp3.data == b"ID3"
    assert await call(client, "voices.export") == DOCUMENT
    result = await call(client, "voices.import_", DOCUMENT, overwrite=True)
    assert result == ImportResult(imported=(), skipped=("narrator",))
    assert await call(client, "voices.list") == [voice]

    sent = [(r.method, r.url.raw_path.decode()) for r in script.requests]
    assert sent == [
        ("POST", "/v1/voices"),
        ("GET", "/v1/voices/a%2Eb%2Fc%20d"),
        ("PATCH", "/v1/voices/narrator"),
        ("DELETE", "/v1/voices/narrator"),
        ("GET", "/v1/voices/narrator/sample?format=mp3&text=Hi+%26+bye&lang=en"),
        ("GET", "/v1/voices/export"),
        ("POST", "/v1/voices/import?overwrite=true"),
        ("GET", "/v1/voices"),
    ]
    bodies = [json.loads(r.content) if r.content else None for r in script.requests]
    assert bodies[0] == {"name": "narrator", "ref_audio": base64.b64encode(clip).decode(),
                         "ref_text": "hi", "defaults": {"speed": 0.9}}  # fmt: skip
    assert bodies[2] == {"description": None, "defaults": {"top_k": 3}}  # None: clear it
    assert bodies[6] == DOCUMENT
    assert len(set(script.request_ids)) == len(script.requests)


async def test_mistakes_are_caught_before_sending(make_client: MakeClient) -> None:
    client = make_client(script := Script())
    with pytest.raises(TypeError, match="colour"):
        await call(client, "voices.update", "narrator", colour="blue")
    with pytest.raises(TypeError, match="bytes"):
        await call(client, "voices.create", "narrator", ref_audio="me.wav", ref_text="hi")
    with pytest.raises(TypeError, match="export document"):
        await call(client, "voices.import_", [DOCUMENT])
    with pytest.raises(ValueError, match="empty"):
        await call(client, "voices.get", "")
    assert script.requests == []


@pytest.mark.parametrize(
    ("method", "body"),
    [(("voices.get", "x"), {"id": "x"}), (("voices.get", "x"), ["not", "an", "object"]),
     (("voices.list",), {"data": [{"kind": "seed"}]}),
     (("voices.export",), {"format": "other", "voices": []}),
     (("voices.import_", DOCUMENT), {"imported": 3})],
)  # fmt: skip
async def test_malformed_answers_raise_protocol_error(
    make_client: MakeClient, method: tuple[Any, ...], body: Any
) -> None:
    client = make_client(script := Script(ok(body)))
    with pytest.raises(ProtocolError) as info:
        await call(client, *method)
    assert info.value.request_id == script.request_ids[0]


# (method, args, kwargs) of each call that changes the library, and its success (status, body)
MUTATIONS: list[tuple[str, tuple[Any, ...], dict[str, Any], int, Any]] = [
    ("voices.create", ("narrator",), {"seed": 4}, 201, VOICE),
    ("voices.update", ("narrator",), {"description": "x"}, 200, VOICE),
    ("voices.delete", ("narrator",), {}, 204, None),
    ("voices.import_", (DOCUMENT,), {}, 200, {"imported": ["narrator"], "skipped": []}),
]
Failure = type[Exception] | tuple[int, str]


def failing(failure: Failure) -> type[Exception] | httpx.Response:
    """A scripted failure: an httpx exception class, or a fresh error response."""
    return failure if isinstance(failure, type) else error(*failure)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, (503, "overloaded"),
     (429, "rate_limited")],
)  # fmt: skip
async def test_changes_are_repeated_when_the_server_surely_did_nothing(
    make_client: MakeClient, clock: FakeClock, failure: Failure
) -> None:
    for method, args, kwargs, status, body in MUTATIONS:
        script = Script(failing(failure), ok(body, status))
        await call(make_client(script), method, *args, **kwargs)
        assert len(script.requests) == 2 and len(set(script.request_ids)) == 1
    assert len(clock.sleeps) == len(MUTATIONS)


@pytest.mark.parametrize(
    ("failure", "raised"),
    [(httpx.ReadError, ConnectError), (httpx.RemoteProtocolError, ConnectError),
     (httpx.WriteError, ConnectError), (httpx.ReadTimeout, TimeoutError),
     ((502, "bad_gateway"), APIStatusError), ((504, "gateway_timeout"), APIStatusError),
     ((500, "internal_error"), APIStatusError)],
)  # fmt: skip
async def test_changes_are_not_repeated_once_the_server_may_have_acted(
    make_client: MakeClient, clock: FakeClock, failure: Failure, raised: type[Exception]
) -> None:
    for method, args, kwargs, status, body in MUTATIONS:
        script = Script(failing(failure), ok(body, status))
        with pytest.raises(raised) as info:
            await call(make_client(script), method, *args, **kwargs)
        assert len(script.requests) == 1
        if isinstance(info.value, TransportError):
            assert info.value.request_sent
    assert clock.sleeps == []


async def test_reads_of_the_library_are_retried_as_any_read(
    make_client: MakeClient, clock: FakeClock
) -> None:
    script = Script(httpx.ReadError, error(502, "bad_gateway"), ok())
    assert (await call(make_client(script), "voices.get", "narrator")).id == "narrator"
    assert len(script.requests) == 3 and len(clock.sleeps) == 2


async def test_refused_connections_are_marked_unsent(make_client: MakeClient) -> None:
    script = Script(httpx.ConnectError, httpx.ConnectError, httpx.ConnectError)
    with pytest.raises(ConnectError) as info:
        await call(make_client(script), "voices.create", "narrator", seed=1)
    assert not info.value.request_sent and len(script.requests) == 3


async def test_exhausted_503_on_a_change_raises_it(make_client: MakeClient) -> None:
    script = Script(*[error(503, "overloaded")] * 2)
    with pytest.raises(ServiceUnavailableError):
        await call(make_client(script, retries=1), "voices.delete", "narrator")
    assert len(script.requests) == 2


async def test_the_api_key_goes_to_the_server_only(make_client: MakeClient) -> None:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            return httpx.Response(200, content=b"ID3", headers={"content-type": "audio/mpeg"})
        return error(503, "overloaded")

    script = Script(route, route, error(401, "invalid_api_key"))
    client = make_client(script, retries=0, api_key="sk-secret", fallback="https://cdn.test/x")
    assert (await call(client, "synthesize", "hi")).fallback
    with pytest.raises(AuthenticationError) as info:  # a 401 is never retried
        await call(client, "voices.list")
    assert info.value.code == "invalid_api_key" and len(script.requests) == 3
    sent = [(r.url.host, r.headers.get("authorization")) for r in script.requests]
    assert sent == [("tts.test", "Bearer sk-secret"), ("cdn.test", None),
                    ("tts.test", "Bearer sk-secret")]  # fmt: skip
    assert "sk-secret" not in repr(client) and "sk-secret" not in repr(client.voices)


@pytest.mark.parametrize("bad", ["", " sk-secret", "sk-secret\n", "sk-se\x00cret", "sk-sécret"])
def test_unusable_api_keys_are_refused_without_echoing_them(bad: str) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        Client(api_key=bad)
    assert "sk-se" not in str(info.value)


def test_a_client_key_needs_its_certificate(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="cert"):
        Client("https://tts.test", key=tmp_path / "client-key.pem")
    with pytest.raises(FileNotFoundError):
        Client("https://tts.test", ca=tmp_path / "missing.pem")
