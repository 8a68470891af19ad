"""Concurrent HTTP requests share GPT steps (max_batch > 1), end to end through ChatTTS."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import numpy as np
import pytest

from chattts_server.server import create_app
from conftest import LiveServer, make_settings

BODY = {"seed": 3, "manual_seed": 11, "format": "pcm",
        "extensions": {"min_new_tokens": 40, "max_new_tokens": 40}}  # fmt: skip
TEXTS = ["First of three.", "第二个请求。", "And the third one."]


def test_concurrent_requests_share_steps_and_get_their_own_audio(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[int] = []
    app = create_app(make_settings(max_batch=4, max_queue=0), engine)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        solo = [c.post("/v1/tts", json={**BODY, "text": t}) for t in TEXTS]
        assert all(r.status_code == 200 and len(r.content) > 1000 for r in solo)
        alone = [r.content for r in solo]
        # batched for sure, however slow the machine: the three generations are queued at once
        # (they join the same step), once the last request has its prompt
        gens: list[Any] = []
        lock, queued = threading.Lock(), threading.Event()

        def together(gen: Any) -> Any:
            with lock:
                gens.append(gen)
                last = len(gens) == len(TEXTS)
            if last:
                engine.batcher.enqueue_all(gens)
                queued.set()
            else:
                assert queued.wait(120), "the three requests never all reached the batcher"
            return gen

        listener = lambda n, _: rows.append(n)  # noqa: E731
        monkeypatch.setattr(engine.batcher, "enqueue", together)
        engine.add_step_listener(listener)
        try:
            results: dict[int, httpx.Response] = {}
            barrier = threading.Barrier(len(TEXTS))

            def post(i: int) -> None:
                with httpx.Client(base_url=srv.url, timeout=120) as own:
                    barrier.wait()
                    results[i] = own.post("/v1/tts", json={**BODY, "text": TEXTS[i]})

            threads = [threading.Thread(target=post, args=(i,)) for i in range(len(TEXTS))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
        finally:
            engine.remove_step_listener(listener)
        metrics = c.get("/metrics").text
    assert [results[i].status_code for i in range(3)] == [200, 200, 200]
    assert max(rows) == 3  # the three requests were in one GPT step
    for i in range(3):  # each got the audio it gets alone
        if engine.info.name == "chattts":  # oneDNN computes rows independently: bit for bit
            assert results[i].content == alone[i]
        else:  # ONNX Runtime's batched kernels round differently: the same tokens, so the
            # same samples within float rounding (a different token would change them wholly)
            got, want = (np.frombuffer(x, "<i2").astype(int) for x in (results[i].content,
                                                                        alone[i]))  # fmt: skip
            assert got.size == want.size and np.abs(got - want).max() <= 2
    assert "chattts_gpt_batch_rows_bucket" in metrics
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("chattts_gpt_step_seconds_count")
    )
    assert count >= len(rows)


def test_max_batch_requests_run_at_once_and_the_next_gets_503(
    engine: Any, endless: dict[str, Any]
) -> None:
    """max_batch=2, max_queue=0: two streams run side by side (held running: endless); a third
    is turned away."""
    long = endless
    app = create_app(make_settings(max_batch=2, max_queue=0), engine)
    with LiveServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        streams = []
        try:
            for _ in range(2):  # both start and stay open: the client reads no further
                client = httpx.Client(base_url=srv.url, timeout=60)
                req = client.build_request(
                    "POST", "/v1/tts?stream=true", json=long,
                    headers={"Accept": "text/event-stream"},
                )  # fmt: skip
                resp = client.send(req, stream=True)
                lines = resp.iter_lines()
                assert any(line.startswith("event: audio") for line in lines)
                streams.append((client, resp, lines))
            assert app.state.worker.depth == 2
            third = c.post("/v1/tts", json=long)
            assert third.status_code == 503
            assert third.json()["error"]["code"] == "overloaded"
            assert "chattts_in_flight 2.0" in c.get("/metrics").text
        finally:
            for client, resp, _ in streams:
                resp.close()
                client.close()
