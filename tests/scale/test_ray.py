"""Scale-out on Ray Serve, end to end: ``chattts-server serve-ray`` on a local Ray cluster
(loopback), two replicas of the whole server on the tiny model behind one port.

Nothing here waits for a guessed duration: the stream that must be in flight when a replica is
killed is held open by a token limit no test reaches, and the kill targets the replica that
serves it (``X-Replica``)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from chattts_server.client import AudioChunk, Client, Done, StreamInterruptedError
from conftest import free_port
from pgtool import PostgresServer

pytest.importorskip("ray", reason="Ray Serve is an optional extra: pip install '.[ray]'")

HOLD_TOKENS = 1_000_000  # a stream with this many tokens runs until it is cut
TEXT = "Hello from a replica."


def replica_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "ServeReplica:chattts"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


class RayServer:
    def __init__(self, tmp: Path, model: Path, *extra: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "serve-ray.log").open("wb")
        cmd = [sys.executable, "-m", "chattts_server.cli", "serve-ray", "--replicas", "2",
               "--replica-cpus", "0.5", "--num-cpus", "2", "--model-dir", str(model),
               "--data-dir", str(tmp / "data"), "--host", "127.0.0.1", "--port", str(self.port),
               "--max-new-tokens", str(HOLD_TOKENS), "--max-batch", "2", "--max-queue", "4",
               "--no-warmup", *extra]  # fmt: skip
        env = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0",
               "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # fmt: skip

    def wait_ready(
        self, replicas: int = 2, deadline_s: float = 300, exclude: int | None = None
    ) -> set[str]:
        """Until ``replicas`` distinct replicas (none of them process ``exclude``) have
        answered /readyz through the proxy."""
        seen: set[str] = set()
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while len(seen) < replicas:
                assert self.proc.poll() is None, self.tail()
                assert time.monotonic() < deadline, f"replicas seen: {seen}\n{self.tail()}"
                try:
                    r = c.get("/readyz")
                    if r.status_code == 200:
                        replica = r.headers["x-replica"]
                        if exclude is None or self.pid_of(replica) != exclude:
                            seen.add(replica)
                        continue
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        return seen

    def pid_of(self, replica: str, deadline_s: float = 120) -> int:
        """The process of a replica, from its start-up log line (Ray forwards the replicas'
        lines to the driver's output a little later: wait for it)."""
        deadline = time.monotonic() + deadline_s
        while True:
            self.log.flush()
            text = Path(self.log.name).read_bytes()
            found = re.findall(rb"replica (\S+) ready \(pid (\d+)\)", text)
            pids = {r.decode(): int(p) for r, p in found}
            if replica in pids:
                return pids[replica]
            assert time.monotonic() < deadline, (replica, pids)
            time.sleep(0.2)

    def replica_running_a_request(self, deadline_s: float = 120) -> str:
        """The replica whose /metrics shows a request in flight (only one is running)."""
        deadline = time.monotonic() + deadline_s
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while time.monotonic() < deadline:
                r = c.get("/metrics")
                m = re.search(r"^chattts_in_flight(?:\{[^}]*\})? (\S+)$", r.text, re.M)
                if m and float(m.group(1)) >= 1:
                    return r.headers["x-replica"]
        raise AssertionError("no replica reports the held stream")

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes()[-4000:].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def ray_server(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, postgres: PostgresServer
) -> Iterator[RayServer]:
    """Two replicas sharing voices in PostgreSQL (no voices.db is made in the data dir)."""
    url = postgres.new_database()
    env = {"CHATTTS_SERVER_DATABASE_URL": url}  # the env var: a flag would show in ps
    server = RayServer(tmp_path_factory.mktemp("ray"), tiny_model_dir, env=env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        postgres.drop_database(url)


def test_two_replicas_serve_every_mode_through_one_port(ray_server: RayServer) -> None:
    body = {"text": TEXT, "seed": 5, "manual_seed": 3}
    seen = set()
    with httpx.Client(base_url=ray_server.url, timeout=120) as c:
        whole = c.post("/v1/tts", json=body)
        assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
        assert whole.headers["x-request-id"].count(",") == 0  # one id, not the proxy's and ours
        seen.add(whole.headers["x-replica"])
        pcm = np.frombuffer(whole.content[44:], "<i2")
        assert (
            pcm.size == int(whole.headers["x-audio-duration-ms"]) * 24
            or abs(pcm.size / 24 - int(whole.headers["x-audio-duration-ms"])) <= 1
        )
        with c.stream("POST", "/v1/tts", json={**body, "stream": True, "format": "wav"}) as r:
            assert r.status_code == 200 and "content-length" not in r.headers
            chunked = b"".join(r.iter_bytes())
            seen.add(r.headers["x-replica"])
        assert len(chunked) == len(whole.content)  # same samples count, streamed in pieces
        sse = c.post("/v1/tts?stream=true", json=body)
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")
        ]
        audio = b"".join(base64.b64decode(e["audio"]) for e in events if "audio" in e)
        assert len(audio) == pcm.size * 2 and "audio_duration_ms" in events[-1]
        seen.add(sse.headers["x-replica"])
        openai = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"}
        speech = c.post("/v1/audio/speech", json=openai)
        assert speech.status_code == 200 and speech.content[:4] == b"RIFF"
        for _ in range(40):  # Serve spreads requests over both (random choice of two)
            if len(seen) == 2:
                break
            seen.add(c.get("/readyz").headers["x-replica"])
    assert len(seen) == 2


def test_a_voice_saved_through_one_replica_is_used_by_the_other(ray_server: RayServer) -> None:
    with httpx.Client(base_url=ray_server.url, timeout=120) as c:
        created = c.post("/v1/voices", json={"name": "shared-voice", "seed": 42})
        assert created.status_code == 201, created.text
        maker = created.headers["x-replica"]
        others = []
        for _ in range(40):  # until a request lands on the other replica
            r = c.post("/v1/tts", json={"text": TEXT, "voice": "shared-voice", "format": "pcm"})
            assert r.status_code == 200, r.text
            if r.headers["x-replica"] != maker:
                others.append(r)
                break
        assert others, "no request reached the second replica"
    assert not list(Path(ray_server.log.name).parent.glob("data/voices.db"))


def test_killing_a_replica_loses_no_whole_file_request(ray_server: RayServer) -> None:
    """SIGKILL the replica serving a held stream while whole-file requests run through the SDK
    with its default retries: the held stream (audio delivered) ends with the SDK's
    interrupted-stream error; every whole-file request succeeds; Serve replaces the replica."""
    assert len(replica_pids()) == 2
    results: dict[str, Any] = {"ok": 0, "failed": []}
    stop, started = threading.Event(), threading.Event()

    def whole_files() -> None:
        with Client(ray_server.url, timeout=120) as client:
            while not stop.is_set():
                try:
                    audio = client.synthesize(TEXT, seed=5, manual_seed=3, format="pcm")
                    assert len(audio.data) > 0
                    results["ok"] += 1
                except Exception as exc:  # counted, asserted below
                    results["failed"].append(repr(exc))
                if results["ok"] >= 2:
                    started.set()

    loop = threading.Thread(target=whole_files)
    with Client(ray_server.url, timeout=120) as client:
        hold = {"min_new_tokens": HOLD_TOKENS, "max_new_tokens": HOLD_TOKENS}
        held = iter(client.stream(TEXT, seed=5, extensions=hold))
        assert next(e for e in held if isinstance(e, AudioChunk)).pcm
        victim = ray_server.pid_of(ray_server.replica_running_a_request())
        loop.start()
        try:
            assert started.wait(300), results
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            with pytest.raises(StreamInterruptedError):
                for e in held:
                    assert not isinstance(e, Done)
            # Serve replaces the replica: two replicas answer again, one of them new
            seen = ray_server.wait_ready(2, exclude=victim)
            recovered_s = time.monotonic() - killed_at
            after = results["ok"]
            while results["ok"] < after + 2:  # whole files go on through the new pair
                assert loop.is_alive() and time.monotonic() - killed_at < 600, results
                time.sleep(0.2)
        finally:
            stop.set()
            loop.join(300)
    assert results["failed"] == [], results["failed"]
    assert len(seen) == 2 and victim not in replica_pids()
    print(json.dumps({"whole_file_ok": results["ok"], "recovered_s": round(recovered_s, 1)}))
