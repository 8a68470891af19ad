"""A short, bounded load test on loopback: N clients for M seconds against /v1/tts.

Every response must be correct audio (a WAV whose header matches its length) or a documented
503/429 error body with Retry-After; anything else counts as malformed or lost. Run
``python -m bench.load`` (starts its own server on a generated tiny model) or pass ``--url``.
Results: ``bench/results/load.json`` and ``load.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def check_wav(data: bytes) -> float:
    """Seconds of audio in a complete WAV; raises ValueError when malformed."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or len(data) < 44:
        raise ValueError("not a WAV")
    if struct.unpack("<I", data[4:8])[0] != len(data) - 8:
        raise ValueError("RIFF size does not match the body")
    rate = struct.unpack("<I", data[24:28])[0]
    size = struct.unpack("<I", data[40:44])[0]
    if size != len(data) - 44 or size == 0:
        raise ValueError("data size does not match the body")
    return size / 2 / rate


def run(url: str, clients: int, seconds: float, max_requests: int = 2000) -> dict[str, Any]:
    counts = {"ok": 0, "rejected_503": 0, "rejected_429": 0, "malformed": 0, "lost": 0}
    latencies: list[float] = []
    audio = 0.0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    sent = 0

    def client(i: int) -> None:
        nonlocal audio, sent
        with httpx.Client(base_url=url, timeout=120) as c:
            n = 0
            while time.monotonic() < deadline:
                with lock:
                    if sent >= max_requests:
                        return
                    sent += 1
                body = {"text": f"Client {i} request {n}. Second sentence.", "seed": i}
                n += 1
                started = time.perf_counter()
                try:
                    r = c.post("/v1/tts", json=body)
                except httpx.HTTPError:
                    with lock:
                        counts["lost"] += 1
                    continue
                took = time.perf_counter() - started
                with lock:
                    try:
                        if r.status_code == 200:
                            audio += check_wav(r.content)
                            counts["ok"] += 1
                            latencies.append(took)
                        elif r.status_code in (503, 429):
                            err = r.json()["error"]
                            if not err["code"] or "retry-after" not in r.headers:
                                raise ValueError("rejection without code or Retry-After")
                            counts[f"rejected_{r.status_code}"] += 1
                            time.sleep(min(float(r.headers["retry-after"]), 0.5))
                        else:
                            raise ValueError(f"unexpected status {r.status_code}")
                    except (ValueError, KeyError):
                        counts["malformed"] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = sorted(latencies)
    return {
        "clients": clients,
        "seconds": seconds,
        "wall_s": round(wall, 2),
        "requests": sum(counts.values()),
        **counts,
        "audio_seconds": round(audio, 2),
        "audio_seconds_per_wall_second": round(audio / wall, 3),
        "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-queue", type=int, default=2)
    args = parser.parse_args()
    if args.url:
        result = run(args.url, args.clients, args.seconds)
        result["server"] = args.url
    else:
        result = _with_local_server(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    (RESULTS / "load.md").write_text(f"# Load test\n\n| figure | value |\n|---|---|\n{rows}\n")
    print(json.dumps(result, indent=2))


def _with_local_server(args: argparse.Namespace) -> dict[str, Any]:
    from chattts_server.engine import ChatTTSEngine, EngineConfig
    from chattts_server.engine.testmodel import make_test_model
    from chattts_server.server import create_app
    from chattts_server.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        model = make_test_model(Path(tmp) / "tiny", "tiny")
        engine = ChatTTSEngine(EngineConfig(model_dir=str(model), max_new_tokens=48))
        engine.load()
        settings = Settings(max_queue=args.max_queue, data_dir=Path(tmp) / "data")
        with serve_in_thread(create_app(settings, engine)) as url:
            result = run(url, args.clients, args.seconds)
    result["server"] = "in-process, generated tiny model, max_new_tokens 48"
    result["max_queue"] = args.max_queue
    return result


if __name__ == "__main__":
    main()
