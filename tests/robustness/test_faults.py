"""Faults: the engine failing mid-stream, and many disconnects in a row, measured."""

from __future__ import annotations

import gc
import os
import threading

import httpx
import psutil
import pytest

from conftest import LiveServer, wait_idle

LONG = {"text": " ".join(f"Bit {i}." for i in range(8)), "seed": 1,
        "extensions": {"min_new_tokens": 48}}  # fmt: skip


@pytest.mark.usefixtures("failing_second_segment")
def test_engine_failure_aborts_a_chunked_body(live: LiveServer) -> None:
    wait_idle(live)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.Client(base_url=live.url) as c,
        c.stream(
            "POST", "/v1/tts", json={**LONG, "stream": True, "format": "wav"}, timeout=60
        ) as r,
    ):
        assert r.status_code == 200
        for data in r.iter_bytes():
            received += data
    assert received[:4] == b"RIFF"  # some audio came, then the body was cut, never "completed"
    with httpx.Client(base_url=live.url, timeout=60) as c:  # and the server keeps serving
        assert c.post("/v1/tts", json={"text": "Fine.", "seed": 1}).status_code == 200


def _resources() -> tuple[int, int, int]:
    gc.collect()
    proc = psutil.Process(os.getpid())
    return threading.active_count(), proc.num_fds(), proc.memory_info().rss


MANY = {"text": " ".join(f"Bit {i}." for i in range(40)), "seed": 1,
        "extensions": {"min_new_tokens": 8, "max_new_tokens": 8}}  # fmt: skip


def test_200_disconnects_leave_no_growth(live: LiveServer) -> None:
    """Bounds: threads and fds back to where they were (±2), RSS growth under 64 MB."""
    with httpx.Client(base_url=live.url, timeout=60) as c:  # warm every path once
        c.post("/v1/tts", json={"text": "Warm.", "seed": 1})
    wait_idle(live)
    threads0, fds0, rss0 = _resources()
    for i in range(200):
        with httpx.Client(base_url=live.url, timeout=60) as c:
            mode = i % 2
            req = c.build_request(
                "POST", "/v1/tts?stream=true", json=MANY,
                headers={"Accept": "text/event-stream" if mode else "audio/wav"},
            )  # fmt: skip
            resp = c.send(req, stream=True)
            it = resp.iter_bytes()
            next(it)  # first bytes arrived: the synthesis is running
            del it
            resp.close()
    wait_idle(live, timeout=30)
    threads1, fds1, rss1 = _resources()
    growth_mb = (rss1 - rss0) / 2**20
    print(f"threads {threads0}->{threads1}, fds {fds0}->{fds1}, rss +{growth_mb:.1f} MB")
    assert threads1 <= threads0 + 2
    assert fds1 <= fds0 + 2
    assert growth_mb < 64


def test_a_client_that_stops_reading_is_cut_and_frees_the_worker(engine, caplog, endless) -> None:  # type: ignore[no-untyped-def]
    """A tiny receive window makes the server's sends block; after send_timeout_s the
    connection is cut, the synthesis cancelled, and the worker takes the next request."""
    import json
    import socket
    import time

    from chattts_server.server import create_app
    from conftest import make_settings

    caplog.set_level("INFO", logger="chattts_server.request")
    app = create_app(make_settings(send_timeout_s=1.0), engine)
    with LiveServer(app) as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        # endless: more audio than any socket buffer holds, so the server's sends must block
        body = json.dumps({**endless, "sample_rate": 48000, "format": "pcm", "stream": True})
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(
            f"POST /v1/tts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        sock.recv(1024)  # the response started; from now on we never read
        started = time.monotonic()
        deadline = started + 90  # liveness bound: send_timeout_s is 1 s
        while app.state.worker.depth:
            assert time.monotonic() < deadline, "worker still held by a client that stopped reading"
            time.sleep(0.05)
        freed_after = time.monotonic() - started
        sock.close()
        print(f"worker freed {freed_after:.1f}s after the client stopped reading")
        while not (lines := [r.fields for r in caplog.records if hasattr(r, "fields")]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert lines[-1]["status"] in ("cancelled", "error")
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            assert c.post("/v1/tts", json={"text": "Next.", "seed": 1}).status_code == 200
