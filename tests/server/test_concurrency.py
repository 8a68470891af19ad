"""The engine runs off the event loop; a bounded queue; disconnects free the worker.

Requests that must "still be running" are the ``endless`` fixture's: they run until cancelled,
so no test here depends on how fast the machine synthesizes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import LiveServer, wait_idle
from streamtool import Drain


def open_sse(url: str, body: dict[str, Any]) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, timeout=60)
    req = client.build_request(
        "POST", "/v1/tts?stream=true", json=body, headers={"Accept": "text/event-stream"}
    )
    return client, client.send(req, stream=True)


def first_audio(resp: httpx.Response) -> Iterator[str]:
    """Read up to the first audio event; keep the returned iterator alive to stay connected
    (dropping it closes the connection)."""
    lines = resp.iter_lines()
    for line in lines:
        if line.startswith("event: audio"):
            return lines
    raise AssertionError("no audio event")


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    """Liveness bound only: generous, never a speed assumption."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_health_answers_and_a_third_request_gets_503(
    live: LiveServer, endless: dict[str, Any]
) -> None:
    """max_batch 1 + max_queue 1: one request runs (held running), one waits, the third is
    turned away at once; /healthz and /metrics answer throughout."""
    wait_idle(live)
    c1, r1 = open_sse(live.url, endless)
    running = Drain(c1, r1, first_audio(r1))
    running.start()
    result: dict[str, int] = {}

    def second() -> None:
        with httpx.Client(base_url=live.url, timeout=120) as c:
            result["status"] = c.post("/v1/tts", json={"text": "Next.", "seed": 2}).status_code

    t = threading.Thread(target=second)
    t.start()
    wait_for(lambda: live.app.state.worker.depth == 2, "the second request was not queued")
    with httpx.Client(base_url=live.url, timeout=30) as c:
        third = c.post("/v1/tts", json={"text": "Third.", "seed": 3})
        assert third.status_code == 503
        assert third.json()["error"]["code"] == "overloaded"
        assert int(third.headers["retry-after"]) >= 1
        # the loop is never blocked by synthesis: the running request never ends by itself,
        # so an answer at all proves it (how fast is the benchmark's business)
        for _ in range(5):
            assert c.get("/healthz").status_code == 200
        assert "chattts_queue_depth 1.0" in c.get("/metrics").text
        assert "status" not in result  # still waiting its turn
    running.stop.set()
    running.join(60)
    t.join(120)
    assert result["status"] == 200  # the queued request ran once the first was cancelled
    wait_idle(live)


@pytest.mark.parametrize("mode", ["sse", "chunked", "full"])
def test_disconnect_cancels_and_frees_the_worker(
    live: LiveServer, caplog: pytest.LogCaptureFixture, mode: str, endless: dict[str, Any]
) -> None:
    wait_idle(live)
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    if mode == "sse":
        client, resp = open_sse(live.url, endless)
        first_audio(resp)
        resp.close()
        client.close()
    elif mode == "chunked":
        client = httpx.Client(base_url=live.url, timeout=60)
        body = {**endless, "stream": True, "format": "wav"}
        resp = client.send(client.build_request("POST", "/v1/tts", json=body), stream=True)
        assert next(resp.iter_bytes())[:4] == b"RIFF"
        resp.close()
        client.close()
    else:  # the whole file never comes: give up waiting for it
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=live.url) as client:
            client.post("/v1/tts", json=endless, timeout=1.0)
    wait_idle(live, timeout=60)  # a request that never ends by itself was stopped
    wait_for(lambda: [r for r in caplog.records if hasattr(r, "fields")], "no request log line")
    line = [r.fields for r in caplog.records if hasattr(r, "fields")][-1]
    assert line["status"] == "cancelled" and line["http_status"] == 499
    with httpx.Client(base_url=live.url, timeout=60) as c:  # the worker takes the next one
        assert c.post("/v1/tts", json={"text": "Next.", "seed": 2}).status_code == 200
