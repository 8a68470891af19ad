"""The voice library over HTTP, on a live app (tiny model), once on each store: the session's
server (SQLite in its data dir) and one whose voices are in PostgreSQL."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from chattts_server.audio import decode_audio
from conftest import LiveServer, make_settings


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_live(
    request: pytest.FixtureRequest, live: LiveServer, engine: Any
) -> Iterator[LiveServer]:
    if request.param == "sqlite":
        yield live
        return
    from chattts_server.server import create_app

    pg = request.getfixturevalue("postgres")
    url = pg.new_database()
    try:
        with LiveServer(create_app(make_settings(database_url=url), engine)) as srv:
            yield srv
    finally:
        pg.drop_database(url)


@pytest.fixture
def http(store_live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=store_live.url, timeout=120) as client:
        yield client


def clip(seconds: float, rate: int = 16000) -> str:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    sf.write(buf, (rng.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32), rate,
             format="WAV", subtype="PCM_16")  # fmt: skip
    return base64.b64encode(buf.getvalue()).decode()


def name() -> str:
    return f"v-{uuid.uuid4().hex[:10]}"


def tts(http: httpx.Client, **kw: object) -> httpx.Response:
    r = http.post("/v1/tts", json={"text": "Voice test.", "manual_seed": 4, **kw})
    assert r.status_code == 200, r.text
    return r


def test_crud_lifecycle(http: httpx.Client) -> None:
    n = name()
    r = http.post("/v1/voices", json={"name": n, "seed": 77, "description": "calm",
                                      "language": "en", "defaults": {"speed": 1.5}})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "seed" and r.json()["model_fingerprint"]
    assert n in {v["id"] for v in http.get("/v1/voices").json()["data"]}
    assert http.get(f"/v1/voices/{n}").json()["defaults"] == {"speed": 1.5}
    r = http.patch(f"/v1/voices/{n}", json={"description": "calmer"})
    assert r.json()["description"] == "calmer" and r.json()["defaults"] == {"speed": 1.5}
    assert http.delete(f"/v1/voices/{n}").status_code == 204
    assert http.get(f"/v1/voices/{n}").status_code == 404
    assert http.delete(f"/v1/voices/{n}").json()["error"]["code"] == "voice_not_found"


def test_saved_seed_voice_sounds_like_its_seed(http: httpx.Client) -> None:
    n = name()
    http.post("/v1/voices", json={"name": n, "seed": 31})
    assert tts(http, voice=n).content == tts(http, seed=31).content
    r = http.post("/v1/audio/speech", json={"model": "tts-1", "input": "Voice test.",
                                            "voice": n, "response_format": "wav"})  # fmt: skip
    assert r.status_code == 200 and "x-voice-warning" not in r.headers


def test_voice_defaults_apply_unless_the_request_sets_them(http: httpx.Client) -> None:
    n = name()
    http.post("/v1/voices", json={"name": n, "seed": 9, "defaults": {"speed": 2.0}})
    assert tts(http, voice=n).content == tts(http, seed=9, speed=2.0).content
    assert tts(http, voice=n, speed=1.0).content == tts(http, seed=9, speed=1.0).content


def test_reference_clip_voice_and_sample(http: httpx.Client) -> None:
    n = name()
    r = http.post("/v1/voices", json={"name": n, "ref_audio": clip(1.5), "ref_text": "参考"})
    assert r.status_code == 201 and r.json()["kind"] == "ref_audio"
    a, b = tts(http, voice=n), tts(http, voice=n)
    assert a.content == b.content
    s = http.get(f"/v1/voices/{n}/sample", params={"format": "mp3"})
    assert s.status_code == 200 and s.headers["content-type"] == "audio/mpeg"
    assert decode_audio(s.content, "mp3")[0].size > 0
    assert http.get(f"/v1/voices/{n}/sample").content == http.get(f"/v1/voices/{n}/sample").content


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"name": "../etc/passwd", "seed": 1}, 400, "invalid_value", "name"),
        ({"name": "a b", "seed": 1}, 400, "invalid_value", "name"),
        ({"name": "x" * 65, "seed": 1}, 400, "invalid_value", "name"),
        ({"name": "naïve", "seed": 1}, 400, "invalid_value", "name"),
        ({"name": "alloy", "seed": 1}, 409, "voice_exists", "name"),
        ({"name": "ok-name"}, 400, "missing_field", "seed"),
        ({"name": "ok-name", "seed": 1, "ref_audio": "AAAA", "ref_text": "x"}, 400,
         "conflicting_voice", "ref_audio"),
        ({"name": "ok-name", "ref_audio": base64.b64encode(b"nope" * 100).decode(),
          "ref_text": "x"}, 400, "invalid_ref_audio", "ref_audio"),
        ({"name": "ok-name", "ref_audio": clip(0.2), "ref_text": "x"}, 400,
         "ref_audio_too_short", "ref_audio"),
        ({"name": "ok-name", "ref_audio": clip(31, rate=8000), "ref_text": "x"}, 400,
         "ref_audio_too_long", "ref_audio"),
        ({"name": "ok-name", "ref_audio": clip(1.0)}, 400, "missing_field", "ref_text"),
        ({"name": "ok-name", "spk_emb": "garbage"}, 400, "invalid_spk_emb", "spk_emb"),
        ({"name": "ok-name", "seed": 1, "defaults": {"speed": 9}}, 400, "invalid_value",
         "defaults.speed"),
    ],
)  # fmt: skip
def test_bad_creates(http: httpx.Client, body: dict, status: int, code: str, param: str) -> None:
    r = http.post("/v1/voices", json=body)
    assert r.status_code == status, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)


def test_duplicate_is_409(http: httpx.Client) -> None:
    n = name()
    assert http.post("/v1/voices", json={"name": n, "seed": 1}).status_code == 201
    r = http.post("/v1/voices", json={"name": n, "seed": 2})
    assert r.status_code == 409 and r.json()["error"]["code"] == "voice_exists"


@pytest.mark.parametrize(
    "path", ["/v1/voices/a%20b", "/v1/voices/" + "y" * 65, "/v1/voices/%2e%2e"]
)
def test_path_names_are_checked(http: httpx.Client, path: str) -> None:
    r = http.get(path)
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "invalid_voice_name"


def test_unknown_voice_in_tts_is_404(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={"text": "x", "voice": "does-not-exist"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "voice"


def test_export_import_and_model_warning(http: httpx.Client) -> None:
    n = name()
    http.post("/v1/voices", json={"name": n, "seed": 5})
    exported = http.get("/v1/voices/export").json()
    assert exported["format"] == "chattts-server-voices"
    mine = [v for v in exported["voices"] if v["name"] == n]
    before = tts(http, voice=n).content
    http.delete(f"/v1/voices/{n}")
    r = http.post("/v1/voices/import", json={**exported, "voices": mine})
    assert r.json() == {"imported": [n], "skipped": []}
    assert tts(http, voice=n).content == before
    assert http.post("/v1/voices/import", json={**exported, "voices": mine}).json()["skipped"] == [
        n
    ]
    other = [{**mine[0], "model_fingerprint": "0000000000000000"}]
    r = http.post("/v1/voices/import?overwrite=true", json={**exported, "voices": other})
    assert r.json()["imported"] == [n]
    assert "made with model 0000000000000000" in tts(http, voice=n).headers["x-voice-warning"]
    bad = [{**mine[0], "name": "../x"}]
    r = http.post("/v1/voices/import", json={**exported, "voices": bad})
    assert r.status_code == 400 and r.json()["error"]["param"] == "voices.0.name"


def test_reserved_route_names_and_typed_imports(http: httpx.Client) -> None:
    for reserved in ("export", "import"):
        r = http.post("/v1/voices", json={"name": reserved, "seed": 1})
        assert r.status_code == 409 and r.json()["error"]["code"] == "voice_exists"
    doc = {"format": "chattts-server-voices", "version": 1}
    good = {"name": "typed-ok", "kind": "seed", "model_fingerprint": "x", "seed": 1,
            "spk_emb": "abc"}  # fmt: skip
    for field, value in (("seed", "not-a-number"), ("created_at", "yesterday"), ("kind", "x"),
                         ("defaults", {"speed": 9})):  # fmt: skip
        r = http.post("/v1/voices/import", json={**doc, "voices": [{**good, field: value}]})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"].startswith(f"voices.0.{field}")
    assert http.get("/v1/voices").status_code == 200  # nothing half-imported broke the list
