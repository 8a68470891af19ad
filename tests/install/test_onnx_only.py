"""The torch-free install: a fresh venv with only ``chattts-server[onnx]`` serves an export.

Builds the project's wheel into a new venv (pip, with the registry or pip's cache), checks that
torch, transformers and ChatTTS are not importable there, starts ``serve --engine onnx`` from
that venv on the tiny model's export, and decodes a whole WAV file and an SSE stream. About a
minute with pip's cache warm (the venv is ~0.5 GB, no torch)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import free_port, wait_serving

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def onnx_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("onnx-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    out = subprocess.run([*pip, "install", f"{ROOT}[onnx]"], capture_output=True, text=True,
                         timeout=1200)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return venv


def test_the_onnx_only_venv_has_no_torch(onnx_venv: Path) -> None:
    for module in ("torch", "transformers", "ChatTTS", "torchaudio"):
        r = subprocess.run([str(onnx_venv / "bin" / "python"), "-c", f"import {module}"],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, module
    r = subprocess.run([str(onnx_venv / "bin" / "python"), "-c", "import onnxruntime, tokenizers"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def served(onnx_venv: Path, onnx_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:  # fmt: skip
    port = free_port()
    log = tmp_path_factory.mktemp("onnx-serve") / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATTTS_SERVER_")}
    cmd = [str(onnx_venv / "bin" / "chattts-server"), "serve", "--engine", "onnx",
           "--onnx-dir", str(onnx_model_dir), "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(log.parent), "--max-new-tokens", "48"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, proc, 180, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_it_serves_whole_files_and_sse(served: str) -> None:
    body = {"text": "Hello without torch.", "seed": 2, "manual_seed": 3,
            "extensions": {"min_new_tokens": 24, "max_new_tokens": 24}}  # fmt: skip
    with httpx.Client(base_url=served, timeout=120) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"]["engine"] == "chattts-onnx"
        r = c.post("/v1/tts", json={**body, "format": "wav"})
        assert r.status_code == 200, r.text
        pcm, rate = sf.read(io.BytesIO(r.content), dtype="int16")
        assert rate == 24000 and pcm.size == 24 * 512 - 256
        sse = c.post("/v1/tts?stream=true", json=body, headers={"Accept": "text/event-stream"})
        assert sse.status_code == 200 and sse.headers["content-type"].startswith(
            "text/event-stream"
        )
        events = []
        for block in sse.text.replace("\r\n", "\n").split("\n\n"):
            lines = block.split("\n")
            kind = next((x[6:].strip() for x in lines if x.startswith("event:")), None)
            data = [x[5:] for x in lines if x.startswith("data:")]
            if data:
                events.append((kind, json.loads("".join(data))))
    audio = [base64.b64decode(d["audio"]) for k, d in events if k == "audio"]
    streamed = np.frombuffer(b"".join(audio), "<i2")
    assert events[-1][0] == "done" and streamed.size == pcm.size
    assert np.abs(streamed.astype(int) - pcm.astype(int)).max() <= 0.002 * np.sqrt(
        np.mean(pcm.astype(float) ** 2)) + 1  # fmt: skip
