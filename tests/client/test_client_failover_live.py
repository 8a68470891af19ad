"""SDK failover for real: two ``chattts-server serve`` processes on the tiny model, one client of
both, and the first SIGKILLed in the middle of a loop of calls.

The kill comes at a point the test holds, not at a moment it guesses: the first server runs
one synthesis at a time (``--max-batch 1``) and is busy with a stream that never ends by
itself (the token limit is out of reach and random weights do not stop), whose first audio the
test has received; a whole-file request waits in its queue behind it (the test polls the
server's queue gauge until it shows). Then SIGKILL. The stream had delivered audio, so it must
end with ``StreamInterruptedError``, and is counted; the queued request, and every call after,
must succeed on the second server without an error reaching the caller."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattts_server.client import (
    AsyncClient,
    Audio,
    AudioChunk,
    Client,
    ConnectError,
    Done,
    StreamInterruptedError,
)
from conftest import wait_serving

ENDLESS = 10**6  # GPT steps: out of reach, so a request asking for that many never ends
SHORT = {"max_new_tokens": 12}
WAIT_S = 300  # generous: a loaded 2-core machine is slow, never wrong
QUEUED = re.compile(r"^chattts_queue_depth (\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``chattts-server serve`` process, its log in ``data_dir``."""

    def __init__(self, model_dir: Path, data_dir: Path) -> None:
        data_dir.mkdir()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir / "server.log"
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chattts_server.cli", "serve", "--model-dir",
                 str(model_dir), "--data-dir", str(data_dir), "--host", "127.0.0.1",
                 "--port", str(port), "--no-warmup", "--max-batch", "1", "--max-queue", "4",
                 "--max-new-tokens", str(ENDLESS), "--send-timeout-s", "3600",
                 "--graceful-shutdown-s", "1", "--log-level", "warning"],
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_ready(self) -> None:
        wait_serving(self.url, self.proc, WAIT_S, self.log)

    def wait_queued(self, n: int) -> None:
        """Until ``n`` requests wait in the server's queue (a state, not a time)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            metrics = httpx.get(f"{self.url}/metrics", timeout=30).text
            match = QUEUED.search(metrics)
            if match is not None and float(match.group(1)) >= n:
                return
            assert time.monotonic() < deadline, "the request never reached the queue"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def two_servers(tiny_model_dir: Path, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with ExitStack() as stack:
        servers = (Server(tiny_model_dir, tmp_path / "a"), Server(tiny_model_dir, tmp_path / "b"))
        for server in servers:
            stack.callback(server.stop)
        for server in servers:  # both load at once
            server.wait_ready()
        yield servers


def synthesize(client: Client, n: int) -> Audio:
    audio = client.synthesize("Hello there.", seed=n, format="pcm", extensions=SHORT)
    assert not audio.fallback and len(audio.data) > 0
    return audio


def stream(client: Client, n: int) -> Done:
    events = list(client.stream("Hello there.", seed=n, extensions=SHORT))
    done = events[-1]
    assert isinstance(done, Done) and any(isinstance(e, AudioChunk) for e in events)
    return done


def test_calls_fail_over_when_the_first_server_is_killed(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    served: list[tuple[str, str | None]] = []  # (call, the server that answered)
    with Client([a.url, b.url]) as client:  # the default retries, breakers and timeouts
        # both up: everything goes to the first
        for n in range(2):
            served.append(("synthesize", synthesize(client, n).endpoint))
            served.append(("stream", stream(client, n).endpoint))
        assert served == [("synthesize", a.url), ("stream", a.url)] * 2

        # a stream on the first server that has delivered audio, and cannot end by itself
        held = client.stream(
            "Endless.", seed=1, extensions={"min_new_tokens": ENDLESS, "max_new_tokens": ENDLESS}
        )
        for event in held:
            if isinstance(event, AudioChunk):
                break
        # a whole-file request waiting in the first server's queue, behind that stream
        queued: dict[str, Any] = {}

        def whole_file() -> None:
            try:
                queued["result"] = synthesize(client, 7)
            except BaseException as exc:  # reported by the assertion below
                queued["result"] = exc

        worker = threading.Thread(target=whole_file)
        worker.start()
        a.wait_queued(1)

        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait(30)

        interrupted: list[StreamInterruptedError] = []
        try:
            for _ in held:  # what was in flight, then the cut
                pass
        except StreamInterruptedError as exc:
            interrupted.append(exc)
        worker.join(WAIT_S)
        assert not worker.is_alive()
        result = queued["result"]
        assert isinstance(result, Audio), result  # moved to the second server: no error
        assert result.endpoint == b.url

        # the loop goes on: every call on the second server, no error
        after: list[tuple[str, str | None]] = []
        for n in range(4):
            after.append(("synthesize", synthesize(client, n).endpoint))
            after.append(("stream", stream(client, n).endpoint))
        assert after == [("synthesize", b.url), ("stream", b.url)] * 4
        assert "alloy" in {v.id for v in client.voices.list()}
        health = client.health()
        assert health.ready and health.endpoint == b.url

        # the first server's breaker opened (5 calls failed on it): later calls no longer ask it
        assert [e.breaker.state for e in client.endpoints if e.breaker] == ["open", "closed"]

    # exactly the stream that had delivered audio when the kill came was interrupted
    assert len(interrupted) == 1
    (cut,) = interrupted
    assert cut.endpoint == a.url and cut.chunks_received >= 1 and cut.bytes_received > 0

    # the asyncio client, too
    async def async_calls() -> tuple[str | None, str | None]:
        async with AsyncClient([a.url, b.url]) as aclient:
            audio = await aclient.synthesize("Hi.", seed=3, format="pcm", extensions=SHORT)
            events = [e async for e in aclient.stream("Hi.", seed=3, extensions=SHORT)]
            assert isinstance(events[-1], Done)
            return audio.endpoint, events[-1].endpoint

    assert asyncio.run(async_calls()) == (b.url, b.url)


def test_with_both_servers_down_the_error_names_the_last() -> None:
    with socket.socket() as s1, socket.socket() as s2:  # two ports nobody listens on
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        dead = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in (s1, s2)]
        with Client(dead, retries=0) as client, pytest.raises(ConnectError) as info:
            client.synthesize("hi")
    assert info.value.endpoint == dead[1] and not info.value.request_sent
