"""The OpenAPI document is the contract: schemathesis, every check on, against the live server
on the tiny model, finds nothing (chapter 2.2 of the original description)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from chattts_server.audio import create_encoder
from conftest import LiveServer, make_settings

HERE = Path(__file__).resolve().parent
SEED = 20261126
EXAMPLES = 25  # per operation and phase: enough to reach every operation's own logic


def clip(seconds: float = 1.0) -> bytes:
    pcm = np.random.default_rng(0).uniform(-0.3, 0.3, int(24000 * seconds)).astype(np.float32)
    enc = create_encoder("wav", 24000, 24000, pcm.size)
    return enc.encode(pcm) + enc.flush()


@pytest.fixture(scope="module")
def server(engine: Any) -> Iterator[LiveServer]:
    from chattts_server.server import create_app

    settings = make_settings(max_text_chars=300, max_queue=4)
    with LiveServer(create_app(settings, engine)) as srv:
        yield srv


def test_schemathesis_finds_nothing(server: LiveServer, engine: Any, tmp_path: Path) -> None:
    audio = base64.b64encode(clip()).decode()
    voices = {
        "narrator": {"seed": 42},
        "speaker": {"spk_emb": engine.speaker_for_seed(7)},
        "clip-voice": {"ref_audio": audio, "ref_text": "Hello there."},
    }
    with httpx.Client(base_url=server.url, timeout=120) as c:
        for name, source in voices.items():
            assert c.post("/v1/voices", json={"name": name, **source}).status_code == 201
    data = tmp_path / "contract.json"
    data.write_text(
        json.dumps(
            {
                "voices": sorted(voices),
                "spk_emb": engine.speaker_for_seed(9),
                "ref_audio": audio,
                "ref_tokens": engine.encode_reference(clip()),
                "request_timeout_s": server.app.state.settings.request_timeout_s,
            }
        )
    )
    env = {
        **os.environ,
        "CHATTTS_CONTRACT_DATA": str(data),
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
        "--checks", "all", "--seed", str(SEED), "--max-examples", str(EXAMPLES),
        "--workers", "1", "--no-color", "--generation-database", "none",
        "--report", "junit", "--report-dir", str(tmp_path / "report"),
        "--suppress-health-check", "all",
        "--request-timeout", "600",  # a liveness bound: CI machines are busy, never a speed goal
    ]  # fmt: skip
    run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-20000:]
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    operations = sum(len(item) for item in paths.values())
    assert f"Tested: {operations}" in out, out[-3000:]  # every operation reached
