"""``serve`` on SIGTERM: requests in flight finish, bounded by ``graceful_shutdown_s``; the
process exits 0 either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import free_port, wait_serving

from .shutdown import (
    WAIT_S,
    finish_after_sigterm,
    log_records,
    silence_bytes,
    wait_until_refusing,
)


@contextmanager
def serve(
    model_dir: Path, data_dir: Path, *flags: str
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = data_dir / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chattts_server.cli", "serve", "--model-dir", str(model_dir),
             "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
             "--max-batch", "1", *flags],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url, proc, WAIT_S, log)
        yield url, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def test_sigterm_lets_a_request_in_flight_finish_and_exits_0(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # the bounds are far away: only the request's own end may end it
    flags = ("--graceful-shutdown-s", "600", "--send-timeout-s", "600")
    with serve(tiny_model_dir, tmp_path, *flags) as (url, proc, log):
        first, total = finish_after_sigterm(url, lambda: os.kill(proc.pid, signal.SIGTERM))
        assert proc.wait(WAIT_S) == 0, log.read_text()[-5000:]
    assert first.startswith(b"RIFF")
    assert total > silence_bytes()
    records = log_records(log.read_text())
    messages = [r.get("msg", "") for r in records]
    # uvicorn says this only when a connection is still open at shutdown: ours was
    assert any("Waiting for connections to close" in m for m in messages), messages
    tts = [r for r in records if r.get("route") == "/v1/tts"]
    assert [(r["status"], r["http_status"]) for r in tts] == [("ok", 200)]


def test_the_grace_period_bounds_a_request_that_would_not_end(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    endless = 10**6  # GPT steps: this request never ends by itself (random weights)
    flags = ("--graceful-shutdown-s", "1", "--max-new-tokens", str(endless))
    body = {"text": "Endless.", "seed": 1, "stream": True, "format": "wav",
            "extensions": {"min_new_tokens": endless, "max_new_tokens": endless}}  # fmt: skip
    with (
        serve(tiny_model_dir, tmp_path, *flags) as (url, proc, log),
        httpx.Client(base_url=url, timeout=WAIT_S) as client,
        client.stream("POST", "/v1/tts", json=body) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)
        proc.send_signal(signal.SIGTERM)
        wait_until_refusing(url)
        try:
            for _ in chunks:  # read on: the grace period, not the client, ends it
                pass
            cut = False
        except httpx.RemoteProtocolError:  # the chunked body never completed
            cut = True
        assert proc.wait(WAIT_S) == 0, log.read_text()[-5000:]
    assert cut
    messages = [r.get("msg", "") for r in log_records(log.read_text())]
    assert any("timeout graceful shutdown exceeded" in m for m in messages), messages


def test_the_grace_period_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from chattts_server.settings import Settings

    assert Settings().graceful_shutdown_s == 30
    monkeypatch.setenv("CHATTTS_SERVER_GRACEFUL_SHUTDOWN_S", "7")
    assert Settings().graceful_shutdown_s == 7
