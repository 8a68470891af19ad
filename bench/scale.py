"""Scale-out on Ray Serve: a replica killed under load, and throughput with 1 vs 2 replicas.

    python -m bench.scale [--quick]

1. ``kill``: ``serve-ray --replicas 2`` on the tiny model; two client threads run whole-file
   requests and streams through the Python SDK (default retries) while one replica's process is
   SIGKILLed; counts every request and how it ended, and the time until two replicas answer
   again (one of them new).
2. ``throughput``: the full-size model with 1 and then 2 replicas (1 CPU each), 4 concurrent
   whole-file requests at a time; audio seconds per wall second. This machine has 2 cores, so
   two replicas cannot be much faster than one batching replica: the figure is here to show the
   path works and what it costs; it matters on machines with a core (or GPU) per replica.

Results: ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
TEXT = "Benchmarks speak in a steady voice, one sentence at a time."
NOTE = (
    "2 cores and one memory bus: a GPT step is bound by reading the weights, so one replica "
    "batching 4 requests reads them once per step while two replicas read them twice; two "
    "replicas are slower here. Replicas pay off with a core set (or a GPU) and memory "
    "bandwidth of their own each, i.e. on other machines"
)


class Cluster:
    """``chattts-server serve-ray`` in a process group of its own."""

    def __init__(self, model: Path, replicas: int, cpus: float, *extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = CACHE / f"serve-ray-{self.port}.log"
        self.log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "chattts_server.cli", "serve-ray", "--replicas",
               str(replicas), "--replica-cpus", str(cpus), "--num-cpus", "2", "--model-dir",
               str(model), "--data-dir", str(CACHE / "scale-data"), "--host", "127.0.0.1",
               "--port", str(self.port), *extra]  # fmt: skip
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)  # fmt: skip

    def replicas_ready(self, n: int, exclude: int | None = None, timeout: float = 600) -> None:
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while len(seen) < n:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log_path.read_text(errors="replace")[-3000:])
                try:
                    r = c.get("/readyz")
                    if r.status_code == 200:
                        replica = r.headers["x-replica"]
                        if exclude is not None and replica not in self.pids():
                            continue  # its ready line has not been forwarded yet
                        if exclude is None or self.pids()[replica] != exclude:
                            seen.add(replica)
                        continue
                except httpx.TransportError:
                    pass
                time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        self.log.flush()
        text = self.log_path.read_bytes()
        return {r.decode(): int(p) for r, p in re.findall(rb"replica (\S+) ready \(pid (\d+)\)",
                                                          text)}  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def kill_figure(tiny: Path, before: int, after: int) -> dict[str, Any]:
    from chattts_server.client import AudioChunk, Client, StreamInterruptedError

    cluster = Cluster(tiny, 2, 0.5, "--no-warmup")
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    count = 0

    def worker(kind: str) -> None:
        nonlocal count
        with Client(cluster.url, timeout=120) as client:
            while not done.is_set():
                try:
                    if kind == "whole":
                        client.synthesize(TEXT, seed=5, manual_seed=3, format="pcm")
                    else:
                        got = False
                        for e in client.stream(TEXT, seed=5, manual_seed=3):
                            got = got or isinstance(e, AudioChunk)
                    outcome = f"{kind}_ok"
                except StreamInterruptedError:
                    outcome = f"{kind}_interrupted"
                except Exception as exc:
                    outcome = f"{kind}_failed"
                    errors.append(repr(exc))
                with lock:
                    outcomes[outcome] += 1
                    count += 1

    try:
        cluster.replicas_ready(2)
        threads = [threading.Thread(target=worker, args=(k,)) for k in ("whole", "stream") * 2]
        for t in threads:
            t.start()
        while count < before:
            time.sleep(0.05)
        while len(cluster.pids()) < 2:  # Ray forwards the replicas' ready lines a bit later
            time.sleep(0.2)
        victim = next(iter(cluster.pids().values()))
        os.kill(victim, signal.SIGKILL)
        killed_at, at = time.monotonic(), count
        cluster.replicas_ready(2, exclude=victim)
        recovered = time.monotonic() - killed_at
        while count < at + after:
            time.sleep(0.05)
        done.set()
        for t in threads:
            t.join(300)
    finally:
        done.set()
        cluster.stop()
    return {
        "model": "tiny",
        "replicas": 2,
        "clients": "2 whole-file + 2 streaming threads, Python SDK default retries",
        "requests": sum(outcomes.values()),
        "killed_after_requests": before,
        "outcomes": dict(sorted(outcomes.items())),
        "whole_file_failures": outcomes["whole_failed"],
        "interrupted_streams": outcomes["stream_interrupted"],
        "other_failures": outcomes["stream_failed"],
        "errors": errors[:10],
        "recovery_s": round(recovered, 1),
        "recovery": "SIGKILL until two replicas answer /readyz through the proxy, one new",
    }


def throughput_figure(full: Path, tokens: int, rounds: int) -> dict[str, Any]:
    from chattts_server.client import Client

    out: dict[str, Any] = {"model": "full", "tokens_per_request": tokens, "concurrent": 4,
                           "rounds": rounds, "cpus_per_replica": 1}  # fmt: skip
    body = {"min_new_tokens": tokens, "max_new_tokens": tokens}
    for replicas in (1, 2):
        cluster = Cluster(full, replicas, 1.0, "--max-batch", "4", "--max-queue", "8")
        try:
            cluster.replicas_ready(replicas)
            with Client(cluster.url, timeout=600) as client:

                def one(_: int) -> float:
                    a = client.synthesize(TEXT, seed=5, format="pcm", extensions=body)
                    return len(a.data) / 2 / 24000

                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(one, range(4)))  # warm every replica
                    rates = []
                    for _ in range(rounds):
                        started = time.perf_counter()
                        audio = sum(pool.map(one, range(4)))
                        rates.append(audio / (time.perf_counter() - started))
            out[f"audio_s_per_wall_s_{replicas}_replicas"] = round(statistics.median(rates), 3)
        finally:
            cluster.stop()
    out["note"] = NOTE
    out["gain_2_vs_1"] = round(
        out["audio_s_per_wall_s_2_replicas"] / out["audio_s_per_wall_s_1_replicas"], 2
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=("kill", "throughput"))
    args = parser.parse_args()
    from chattts_server.engine.testmodel import ensure_test_model

    CACHE.mkdir(exist_ok=True)
    out = RESULTS / "scale.json"
    result: dict[str, Any] = json.loads(out.read_text()) if args.only and out.exists() else {}
    result["machine"] = f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs"
    if "kill" in (args.only or ("kill",)):
        tiny = ensure_test_model(CACHE / "tiny", "tiny")
        result["kill"] = kill_figure(tiny, 10 if args.quick else 40, 10 if args.quick else 40)
        out.write_text(json.dumps(result, indent=2) + "\n")
    if "throughput" in (args.only or ("throughput",)):
        full = ensure_test_model(CACHE / "full", "full")
        result["throughput"] = throughput_figure(full, 47 if args.quick else 94,
                                                 1 if args.quick else 3)  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
