"""Shared fixtures: one generated tiny ChatTTS checkpoint, one loaded engine, and one live
server on loopback (uvicorn in a thread) per session."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chattts_server.engine.testmodel import make_test_model

    return make_test_model(tmp_path_factory.mktemp("tiny-model"), "tiny", seed=0)


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path):
    from chattts_server.engine import ChatTTSEngine, EngineConfig

    eng = ChatTTSEngine(EngineConfig(model_dir=str(tiny_model_dir), max_new_tokens=48))
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def onnx_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported for the ONNX engine (fp32 weights)."""
    from chattts_server.engine.onnx.export import export

    return export(tiny_model_dir, tmp_path_factory.mktemp("tiny-onnx"), weights="fp32")


@pytest.fixture(scope="session")
def onnx_engine(onnx_model_dir: Path):
    from chattts_server.engine import EngineConfig, create_engine

    eng = create_engine(
        EngineConfig(engine="onnx", onnx_dir=str(onnx_model_dir), max_new_tokens=48)
    )
    eng.load()
    yield eng
    eng.close()


class LiveServer:
    def __init__(self, app: Any, **config: Any) -> None:
        self.app = app
        self.scheme = "https" if config.get("ssl_certfile") else "http"
        cfg = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, lifespan="on",
            h11_max_incomplete_event_size=128 * 1024, **config,
        )  # fmt: skip
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def make_settings(**kw: Any) -> Any:
    from chattts_server.settings import Settings

    base: dict[str, Any] = {
        "max_queue": 1,
        "max_batch": 1,  # one at a time unless a test asks for batching
        "keepalive_s": 0.5,
        "max_body_bytes": 2_000_000,
        "data_dir": tempfile.mkdtemp(prefix="chattts-test-data-"),
    }
    return Settings(**{**base, **kw})


@pytest.fixture
def failing_second_segment(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's second segment of the test raises (a message with a path in it that must
    never reach a client)."""
    original = engine._segment
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("GPU on fire /secret/path")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "_segment", flaky)


ENDLESS_TOKENS = 10**6  # 6 hours of audio per segment: no test ever sees one end


@pytest.fixture
def endless(engine: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A request body that runs until it is cancelled: the engine's token limit is raised for
    the test and the request asks for at least that many GPT steps (random weights never
    stop on their own then). Tests that need "this synthesis is still running" hold it so,
    never by guessing how long a synthesis takes."""
    monkeypatch.setattr(engine, "config", replace(engine.config, max_new_tokens=ENDLESS_TOKENS))
    return {
        "text": "Endless.",
        "seed": 1,
        "extensions": {"min_new_tokens": ENDLESS_TOKENS, "max_new_tokens": ENDLESS_TOKENS},
    }


@pytest.fixture(scope="session")
def live(engine: Any) -> Iterator[LiveServer]:
    from chattts_server.server import create_app

    with LiveServer(create_app(make_settings(), engine)) as srv:
        yield srv


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=120) as client:
        yield client


def free_port() -> int:
    """A TCP port free on loopback right now (for a server subprocess)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(url: str, proc: Any, timeout: float, log: Path | None = None) -> None:
    """Until a ``serve`` subprocess answers ``/readyz`` with 200; fails at once if it exits
    (with the end of its ``log``), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-5000:] if log else "server exited"
        assert time.monotonic() < deadline, "server not ready"
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def wait_idle(live: LiveServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while live.app.state.worker.depth:
        if time.monotonic() > deadline:
            raise AssertionError("worker still busy")
        time.sleep(0.02)
