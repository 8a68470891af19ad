"""The engine runs off the event loop; a bounded queue; disconnects free the worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from conftest import LiveServer, wait_idle

LONG = {
    "text": " ".join(f"Sentence number {i}." for i in range(12)),
    "seed": 1,
    "extensions": {"min_new_tokens": 48},
}


def open_sse(url: str) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, timeout=60)
    req = client.build_request(
        "POST", "/v1/tts?stream=true", json=LONG, headers={"Accept": "text/event-stream"}
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


def test_health_stays_fast_and_a_third_request_gets_503(live: LiveServer) -> None:
    wait_idle(live)
    c1, r1 = open_sse(live.url)
    reading = first_audio(r1)
    result: dict[str, int] = {}

    def second() -> None:
        with httpx.Client(base_url=live.url, timeout=120) as c:
            result["status"] = c.post("/v1/tts", json=LONG).status_code

    t = threading.Thread(target=second)
    t.start()
    deadline = time.monotonic() + 10
    while live.app.state.worker.depth < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with httpx.Client(base_url=live.url, timeout=30) as c:
        third = c.post("/v1/tts", json=LONG)
        assert third.status_code == 503
        assert third.json()["error"]["code"] == "overloaded"
        assert int(third.headers["retry-after"]) >= 1
        slowest = 0.0
        for _ in range(20):  # health while one synthesizes and one waits
            started = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.05)
        assert slowest < 1.0  # generous: the loop is never blocked by synthesis
        assert "chattts_queue_depth 1.0" in c.get("/metrics").text
    del reading
    r1.close()
    c1.close()
    t.join(120)
    assert result["status"] == 200
    wait_idle(live)


@pytest.mark.parametrize("mode", ["sse", "chunked", "full"])
def test_disconnect_cancels_and_frees_the_worker(
    live: LiveServer, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    wait_idle(live)
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    started = time.monotonic()
    if mode == "sse":
        client, resp = open_sse(live.url)
        first_audio(resp)
        resp.close()
        client.close()
    elif mode == "chunked":
        client = httpx.Client(base_url=live.url, timeout=60)
        body = {**LONG, "stream": True, "format": "wav"}
        resp = client.send(client.build_request("POST", "/v1/tts", json=body), stream=True)
        next(resp.iter_bytes())
        resp.close()
        client.close()
    else:
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=live.url) as client:
            client.post("/v1/tts", json=LONG, timeout=1.0)
    wait_idle(live, timeout=10)  # bounded: the synthesis stops within one GPT step
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 10
    while not (lines := [r.fields for r in caplog.records if hasattr(r, "fields")]):
        assert time.monotonic() < deadline, "no request log line"
        time.sleep(0.02)
    assert lines[-1]["status"] == "cancelled"
    assert lines[-1]["audio_duration_ms"] < 12 * 48 * 1000 * 512 // 24000
    with httpx.Client(base_url=live.url, timeout=60) as c:  # the worker takes the next one
        assert c.post("/v1/tts", json={"text": "Next.", "seed": 2}).status_code == 200
