"""Voices shared by servers: two apps on one database (as two processes or replicas are) see each
other's voices at once; a PostgreSQL that goes away is a 503 with Retry-After, and the same app
serves again once it is back; ``serve`` with a database it cannot open exits with advice."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from chattts_server.server import create_app
from conftest import LiveServer, make_settings
from pgtool import PostgresServer, require_postgres

from .conftest import VoiceDB


def clip_b64() -> str:
    buf = io.BytesIO()
    noise = (np.random.default_rng(5).standard_normal(24000) * 0.1).astype(np.float32)
    sf.write(buf, noise, 24000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def tts(c: httpx.Client, **kw: Any) -> httpx.Response:
    r = c.post("/v1/tts", json={"text": "Shared voice.", "manual_seed": 3, **kw})
    assert r.status_code == 200, r.text
    return r


def test_a_voice_created_through_one_app_is_used_by_the_other(
    voice_db: VoiceDB, engine: Any
) -> None:
    settings = make_settings(**voice_db.settings())
    with (
        LiveServer(create_app(settings, engine)) as one,
        LiveServer(create_app(settings, engine)) as two,
        httpx.Client(base_url=one.url, timeout=120) as a,
        httpx.Client(base_url=two.url, timeout=120) as b,
    ):
        assert b.get("/v1/voices/shared-seed").status_code == 404
        r = a.post("/v1/voices", json={"name": "shared-seed", "seed": 21,
                                       "defaults": {"speed": 1.5}})  # fmt: skip
        assert r.status_code == 201, r.text
        r = a.post("/v1/voices", json={"name": "shared-ref", "ref_audio": clip_b64(),
                                       "ref_text": "共享"})  # fmt: skip
        assert r.status_code == 201, r.text
        # made through one, spoken through the other: the same audio as through the first
        assert tts(b, voice="shared-seed").content == tts(b, seed=21, speed=1.5).content
        assert tts(b, voice="shared-ref").content == tts(a, voice="shared-ref").content
        listed = {v["id"] for v in b.get("/v1/voices").json()["data"]}
        assert {"shared-seed", "shared-ref"} <= listed
        # changes through the second are seen by the first at once (nothing cached)
        r = b.patch("/v1/voices/shared-seed", json={"defaults": {"speed": 0.5}})
        assert r.status_code == 200, r.text
        assert tts(a, voice="shared-seed").content == tts(a, seed=21, speed=0.5).content
        assert b.delete("/v1/voices/shared-ref").status_code == 204
        r = a.post("/v1/tts", json={"text": "Gone.", "voice": "shared-ref"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "voice_not_found"
        r = a.post("/v1/voices", json={"name": "shared-seed", "seed": 1})
        assert r.status_code == 409 and r.json()["error"]["code"] == "voice_exists"


def test_a_database_that_goes_away_is_503_until_it_is_back(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own server, stopped and started again under a running app."""
    from chattts_server.server import pgstore

    monkeypatch.setattr(pgstore, "POOL_TIMEOUT_S", 1.0)  # each 503 after 1 s, not 5
    pg = PostgresServer(require_postgres())
    try:
        pg.start()
        url = pg.new_database()
        with (
            LiveServer(create_app(make_settings(database_url=url), engine)) as srv,
            httpx.Client(base_url=srv.url, timeout=60) as c,
        ):
            assert c.post("/v1/voices", json={"name": "durable", "seed": 4}).status_code == 201
            pg.stop()
            for method, path, body in (
                ("GET", "/v1/voices", None),
                ("GET", "/v1/voices/durable", None),
                ("POST", "/v1/tts", {"text": "x", "voice": "durable"}),
            ):
                r = c.request(method, path, json=body)
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "voice_store_unavailable"
                assert r.headers["retry-after"] == "5" and pg.password not in r.text
            r = c.post("/v1/tts", json={"text": "Still here.", "voice": "alloy"})
            assert r.status_code == 200  # what needs no saved voice goes on
            pg.start(port=pg.port)
            deadline = time.monotonic() + 30  # the pool reconnects within a few seconds
            while (r := c.get("/v1/voices/durable")).status_code == 503:
                assert time.monotonic() < deadline, "the store did not come back"
            assert r.status_code == 200, r.text  # the same app, no restart
            assert c.post("/v1/voices", json={"name": "after", "seed": 5}).status_code == 201
    finally:
        pg.remove()


def test_serve_exits_with_advice_when_the_database_cannot_be_opened(
    tiny_model_dir: Path, postgres: Any
) -> None:
    url = postgres.url("postgres", password="n0t-the-Passw0rd")
    r = subprocess.run(
        [sys.executable, "-m", "chattts_server.cli", "serve", "--model-dir", str(tiny_model_dir),
         "--port", "1", "--database-url", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "[voice_store_unavailable]" in r.stderr and "password authentication failed" in r.stderr
    assert "n0t-the-Passw0rd" not in r.stderr + r.stdout and "Traceback" not in r.stderr
