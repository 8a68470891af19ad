"""The wire contract (issue 12): callers written from the original description work unchanged,
and the OpenAPI document says what the server does."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from chattts_server.audio import WavReader
from conftest import LiveServer
from streamtool import assert_stream_matches

from .sse import parse_sse

BODY = {"text": "Hello world. 你好，世界。", "seed": 5, "manual_seed": 3}


def wav_pcm(data: bytes) -> np.ndarray:
    reader = WavReader()
    pcm = reader.feed(data)
    reader.close()
    return pcm


def sse_pcm(text: str) -> np.ndarray:
    audio = [e for name, e in parse_sse(text) if name == "audio"]
    return np.frombuffer(b"".join(base64.b64decode(a["audio"]) for a in audio), "<i2")


@pytest.fixture(scope="module")
def reference(live: LiveServer) -> np.ndarray:
    with httpx.Client(base_url=live.url, timeout=120) as c:
        return wav_pcm(c.post("/v1/tts", json=BODY).content)


@pytest.fixture
def bare(live: LiveServer) -> Iterator[httpx.Client]:
    """A client that sends no Accept header at all (as Go's http.Client.Post)."""
    with httpx.Client(base_url=live.url, timeout=120) as client:
        del client.headers["accept"]
        yield client


# --- streaming: SSE unless audio is asked for ------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "text/event-stream", "text/*"])
@pytest.mark.parametrize("where", ["query", "body"])
def test_stream_without_an_audio_request_is_sse(
    bare: httpx.Client, reference: np.ndarray, accept: str | None, where: str
) -> None:
    headers = {"Accept": accept} if accept else {}
    url, body = "/v1/tts?stream=true", BODY
    if where == "body":
        url, body = "/v1/tts", {**BODY, "stream": True}
    r = bare.post(url, json=body, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert_stream_matches(sse_pcm(r.text), reference)
    assert parse_sse(r.text)[-1][0] == "done"


@pytest.mark.parametrize(
    ("extra", "headers", "content_type"),
    [
        ({"format": "mp3"}, {}, "audio/mpeg"),
        ({"format": "wav"}, {"Accept": "*/*"}, "audio/wav"),
        ({}, {"Accept": "audio/flac"}, "audio/flac"),
        ({}, {"Accept": "audio/*"}, "audio/wav"),
        ({}, {"Accept": "text/event-stream;q=0.5, audio/wav"}, "audio/wav"),
    ],
)
def test_stream_asking_for_audio_is_chunked_audio(
    bare: httpx.Client, extra: dict, headers: dict, content_type: str
) -> None:
    r = bare.post("/v1/tts?stream=true", json={**BODY, **extra}, headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == content_type
    assert "content-length" not in r.headers and r.content


def test_stream_accepting_neither_is_406(bare: httpx.Client) -> None:
    r = bare.post("/v1/tts?stream=true", json=BODY, headers={"Accept": "application/json"})
    assert r.status_code == 406 and r.json()["error"]["code"] == "not_acceptable"


def test_explicit_event_stream_wins_over_format(bare: httpx.Client) -> None:
    r = bare.post("/v1/tts?stream=true", json={**BODY, "format": "mp3"},
                  headers={"Accept": "text/event-stream"})  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-ignored-fields"] == "format"


@pytest.fixture
def failing_first_segment(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("GPU on fire /secret/path")

    monkeypatch.setattr(engine, "_segment", broken)


@pytest.mark.usefixtures("failing_first_segment")
def test_chunked_audio_failing_before_any_audio_gets_a_real_status(http: httpx.Client) -> None:
    r = http.post("/v1/tts?stream=true", json={**BODY, "format": "wav"})
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["code"] == "synthesis_failed" and err["request_id"] == r.headers["x-request-id"]
    assert "secret" not in r.text


# --- chapter 3's request fields --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "same_as"),
    [("zh-CN", "zh"), ("ZH-hans", "zh"), ("zh_TW", "zh"), ("cmn", "zh"), ("en-US", "en"),
     ("EN-gb", "en")],
)  # fmt: skip
def test_bcp47_language_tags_mean_what_chattts_speaks(
    http: httpx.Client, tag: str, same_as: str
) -> None:
    body = {**BODY, "extensions": {"max_new_tokens": 8}}
    tagged = http.post("/v1/tts", json={**body, "lang": tag})
    plain = http.post("/v1/tts", json={**body, "lang": same_as})
    assert tagged.status_code == 200, tagged.text
    assert np.array_equal(wav_pcm(tagged.content), wav_pcm(plain.content))


@pytest.mark.parametrize("tag", ["ja-JP", "fr", "", "zh-", "english", "x-zh"])
def test_other_languages_are_400_naming_lang(http: httpx.Client, tag: str) -> None:
    r = http.post("/v1/tts", json={**BODY, "lang": tag})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("unsupported_language", "lang")
    assert "zh-CN" in err["message"] and "en-US" in err["message"]


def test_voice_id_is_a_synonym_of_voice(http: httpx.Client) -> None:
    body = {"text": BODY["text"], "manual_seed": 3, "extensions": {"max_new_tokens": 8}}
    by_voice = http.post("/v1/tts", json={**body, "voice": "alloy"})
    by_id = http.post("/v1/tts", json={**body, "voice_id": "alloy"})
    both = http.post("/v1/tts", json={**body, "voice": "alloy", "voice_id": "alloy"})
    assert by_id.status_code == both.status_code == 200
    assert by_voice.content == by_id.content == both.content
    r = http.post("/v1/tts", json={**body, "voice": "alloy", "voice_id": "echo"})
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("conflicting_voice",
                                                                      "voice_id")  # fmt: skip
    r = http.post("/v1/tts", json={**body, "voice_id": "alloy", "seed": 4})
    assert r.json()["error"]["code"] == "conflicting_voice"
    r = http.post("/v1/tts", json={**body, "voice_id": "nobody-here"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "voice_id"


def test_ref_text_needs_ref_audio(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={**BODY, "seed": None, "voice": "alloy", "ref_text": "Hi."})
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("missing_field",
                                                                      "ref_audio")  # fmt: skip


@pytest.mark.parametrize("key", ["breath", "comma_ms"])
def test_pauses_keep_their_two_keys(http: httpx.Client, key: str) -> None:
    r = http.post("/v1/tts", json={**BODY, "pauses": {"comma": 100, key: 5}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("unknown_field", f"pauses.{key}")


def test_json_types_are_json_schemas(http: httpx.Client) -> None:
    assert http.post("/v1/tts", json={**BODY, "seed": 5.0}).status_code == 200  # an integer
    for field, value in (("seed", "5"), ("stream", "true"), ("speed", "1.0"), ("top_k", True)):
        r = http.post("/v1/tts", json={**BODY, field: value})
        assert r.status_code == 400, (field, value)
        assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_type", field)


def test_ignored_extension_names_are_escaped_in_the_header(http: httpx.Client) -> None:
    body = {**BODY, "extensions": {"max_new_tokens": 8, "é,x": 1, "ok": 2}}
    r = http.post("/v1/tts", json=body)
    assert r.status_code == 200
    assert r.headers["x-ignored-fields"] == "extensions.ok,extensions.%C3%A9%2Cx"


# --- HTTP semantics and the OpenAPI document -------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/voices/someone", "DELETE, GET, PATCH"),
        ("TRACE", "/healthz", "GET"),
        ("GET", "/v1/tts", "POST"),
        ("DELETE", "/v1/voices", "GET, POST"),
    ],
)
def test_405_names_the_allowed_methods(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    r = http.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]


def test_the_openapi_document_says_what_the_server_does(
    http: httpx.Client, live: LiveServer
) -> None:
    doc = http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    settings, info = live.app.state.settings, live.app.state.engine.info
    assert schemas["TTSRequest"]["properties"]["text"]["maxLength"] == settings.max_text_chars
    assert schemas["SpeechRequest"]["properties"]["input"]["maxLength"] == settings.max_text_chars
    ext = schemas["Extensions"]["properties"]["max_new_tokens"]["anyOf"][0]
    assert ext["maximum"] == info.max_new_tokens
    tts = doc["paths"]["/v1/tts"]["post"]
    assert {"text/event-stream", "audio/wav", "audio/mpeg"} <= set(
        tts["responses"]["200"]["content"]
    )
    assert {"400", "401", "404", "406", "413", "415", "429", "500", "503", "504"} <= set(
        tts["responses"]
    )
    timeout = next(p for p in tts["parameters"] if p["name"] == "X-Request-Timeout")
    assert timeout["schema"]["maximum"] == settings.request_timeout_s
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                assert "X-Request-ID" in response["headers"], (method, path, status)
                if status != "200" and status != "201" and status != "204" and path != "/readyz":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)
    name = doc["paths"]["/v1/voices/{name}"]["get"]["parameters"][0]
    assert name["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"


def test_an_unexpected_error_still_carries_the_request_id(
    http: httpx.Client, live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(live.app.state.voices, "list_all", broken)
    r = http.get("/v1/voices", headers={"X-Request-ID": "trace-me-123"})
    assert r.status_code == 500
    assert r.headers.get_list("x-request-id") == ["trace-me-123"]
    assert r.json()["error"]["request_id"] == "trace-me-123"


def test_openapi_bounds_are_the_engines_limits(http: httpx.Client, live: LiveServer) -> None:
    """Each limit is written once (engine/limits.py, the settings); the document shows it."""
    from chattts_server.engine import limits

    schemas = http.get("/openapi.json").json()["components"]["schemas"]

    def bounds(model: str, field: str) -> tuple[float, float]:
        prop = schemas[model]["properties"][field]
        prop = next((o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"), prop)
        return prop["minimum"], prop["maximum"]

    expected = {"speed": limits.SPEED, "temperature": limits.TEMPERATURE,
                "top_p": limits.TOP_P, "top_k": limits.TOP_K}  # fmt: skip
    for model in ("TTSRequest", "VoiceDefaults", "TTSQuery"):
        for field, (lo, hi) in expected.items():
            assert bounds(model, field) == (lo, hi), (model, field)
    for model, field in (
        ("TTSRequest", "seed"),
        ("TTSRequest", "manual_seed"),
        ("VoiceCreate", "seed"),
        ("VoiceRecord", "seed"),
        ("TTSQuery", "seed"),
    ):
        assert bounds(model, field) == limits.SEED, (model, field)  # fmt: skip
    for field in ("comma", "period"):
        assert bounds("PausesModel", field) == limits.PAUSE_MS
    info = live.app.state.engine.info
    assert schemas["TTSRequest"]["properties"]["text"]["maxLength"] == info.max_text_chars
    assert schemas["TTSQuery"]["properties"]["text"]["maxLength"] == info.max_text_chars
    ref_text = schemas["VoiceCreate"]["properties"]["ref_text"]["anyOf"][0]
    assert ref_text["maxLength"] == info.max_ref_text_chars
