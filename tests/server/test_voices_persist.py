"""Saved voices across server processes: restart, and SIGKILL in the middle of a burst — on
each store (``voice_db``: SQLite in the data dir, and PostgreSQL, whose server survives the
killed process)."""

from __future__ import annotations

import base64
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from conftest import free_port, wait_serving

from .conftest import VoiceDB


@contextmanager
def server(model_dir: Path, db: VoiceDB) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chattts_server.cli", "serve", "--model-dir", str(model_dir),
         *db.serve_args(), "--host", "127.0.0.1", "--port", str(port),
         "--max-new-tokens", "32", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, proc, 120)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def clip_b64() -> str:
    buf = io.BytesIO()
    noise = (np.random.default_rng(2).standard_normal(24000) * 0.1).astype(np.float32)
    sf.write(buf, noise, 24000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def test_voice_survives_a_restart_sample_identical(tiny_model_dir: Path, voice_db: VoiceDB) -> None:
    body = {"text": "Restart me.", "voice": "keeper", "manual_seed": 8}
    with server(tiny_model_dir, voice_db) as (url, _):
        r = httpx.post(f"{url}/v1/voices", json={"name": "keeper", "ref_audio": clip_b64(),
                                                 "ref_text": "一二三"})  # fmt: skip
        assert r.status_code == 201, r.text
        first = httpx.post(f"{url}/v1/tts", json=body, timeout=60)
        assert first.status_code == 200
    with server(tiny_model_dir, voice_db) as (url, _):
        assert "keeper" in {v["id"] for v in httpx.get(f"{url}/v1/voices").json()["data"]}
        second = httpx.post(f"{url}/v1/tts", json=body, timeout=60)
    assert second.content == first.content


def test_sigkill_during_a_burst_of_creates_loses_nothing_acknowledged(
    tiny_model_dir: Path, voice_db: VoiceDB
) -> None:
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with server(tiny_model_dir, voice_db) as (url, proc):

        def burst(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                for i in range(400):
                    if stop.is_set():
                        return
                    n = f"w{worker}-{i}"
                    try:
                        r = c.post("/v1/voices", json={"name": n, "seed": i,
                                                       "description": "x" * 200})  # fmt: skip
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        with lock:
                            acknowledged.append(n)

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        while len(acknowledged) < 40:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
    if voice_db.url is None:
        db = voice_db.data_dir / "voices.db"
        assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = voice_db.open()  # what the server does at start
    saved = {v.name: v for v in store.list()}
    assert set(acknowledged) <= set(saved)
    for v in saved.values():  # none half-written
        assert v.kind == "seed" and v.spk_emb and v.description == "x" * 200
    store.close()
