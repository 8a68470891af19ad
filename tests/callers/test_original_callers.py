"""The original description's Go caller (chapters 1 and 3), compiled and run as written against
the live server on the tiny model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from chattts_server.audio import WavReader
from conftest import LiveServer
from gotool import require_go
from streamtool import assert_stream_matches

HERE = Path(__file__).resolve().parent


def wav_pcm(data: bytes) -> np.ndarray:
    reader = WavReader()
    pcm = reader.feed(data)
    reader.close()
    return pcm


@pytest.fixture(scope="module")
def caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go, env = require_go()
    exe = tmp_path_factory.mktemp("callers") / "chapter1"
    subprocess.run([go, "build", "-o", str(exe), "./chapter1"], cwd=HERE, env=env,
                   check=True, timeout=600)  # fmt: skip
    return exe


def test_chapter_1_and_3_callers_work_unchanged(
    caller: Path, live: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    run = subprocess.run([str(caller), live.url, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())

    # chapter 1: Post with no Accept header, ?stream=true → Server-Sent Events
    assert summary["stream_status"] == 200
    assert summary["stream_content_type"].startswith("text/event-stream")
    assert summary["events"]["audio"] >= 2 and summary["events"]["done"] == 1
    assert "event audio: " in run.stdout
    streamed = np.frombuffer((tmp_path / "stream.pcm").read_bytes(), "<i2")
    whole = http.post("/v1/tts", json={"text": "Hello from Go. 你好，世界。", "seed": 5,
                                       "manual_seed": 3})  # fmt: skip
    assert whole.headers["content-type"] == "audio/wav"
    assert_stream_matches(streamed, wav_pcm(whole.content))
    assert summary["done"]["audio_duration_ms"] == round(streamed.size / 24)

    # chapter 3: lang "zh-CN" and voice_id → the same audio as lang "zh" and voice
    assert summary["chapter3_status"] == 200
    assert summary["chapter3_content_type"] == "audio/wav"
    same = http.post("/v1/tts", json={"text": "你好，这是第三章。Hello, chapter three.",
                                      "lang": "zh", "voice": "alloy", "speed": 1.0,
                                      "pauses": {"comma": 100, "period": 200},
                                      "extensions": {"min_new_tokens": 48}})  # fmt: skip
    assert same.status_code == 200
    got = wav_pcm((tmp_path / "chapter3.wav").read_bytes())
    assert got.size == wav_pcm(same.content).size > 0  # same segments, pauses, lengths
