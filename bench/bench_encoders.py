"""Encoder CPU cost: ``python -m bench.bench_encoders`` from the repository root.

Encodes 30 s of 24 kHz mono signal per format, fed in 100 ms chunks as the engine would,
and reports the median over 5 runs of CPU seconds spent per second of audio, the realtime
multiple, and that cost as a fraction of synthesis (~4.5 CPU s per audio s here). Writes
``bench/results/encoders.json`` and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import av
import numpy as np

from chattts_server.audio import AudioFormat, create_encoder

RATE = 24000
SECONDS = 30
CHUNK = RATE // 10
RUNS = 5
SYNTHESIS_CPU_PER_AUDIO_S = 4.5
RESULTS = Path(__file__).parent / "results" / "encoders.json"


def _signal() -> np.ndarray:
    """Two tones under a slow envelope plus a little noise, so codecs have real work."""
    t = np.arange(RATE * SECONDS) / RATE
    envelope = 0.75 - 0.25 * np.cos(2 * np.pi * t / 3)
    tones = 0.6 * np.sin(2 * np.pi * 220 * t) + 0.4 * np.sin(2 * np.pi * 1234.5 * t)
    noise = np.random.default_rng(0).normal(0, 0.02, t.size)
    return (0.5 * envelope * tones + noise).astype(np.float32)


def _cpu_seconds(fmt: AudioFormat, chunks: list[np.ndarray]) -> tuple[float, int]:
    start = time.process_time()
    encoder = create_encoder(fmt)
    size = sum(len(encoder.encode(chunk)) for chunk in chunks) + len(encoder.flush())
    return time.process_time() - start, size


def main() -> None:
    signal = _signal()
    chunks = [signal[i : i + CHUNK] for i in range(0, len(signal), CHUNK)]
    formats = {}
    for fmt in AudioFormat:
        runs = [_cpu_seconds(fmt, chunks) for _ in range(RUNS)]
        cost = statistics.median(seconds for seconds, _ in runs) / SECONDS
        formats[fmt.value] = {
            "cpu_s_per_audio_s": round(cost, 6),
            "realtime_multiple": round(1 / cost) if cost else None,
            "fraction_of_synthesis": round(cost / SYNTHESIS_CPU_PER_AUDIO_S, 6),
            "output_bytes": runs[0][1],
        }
    report = {
        "audio_seconds": SECONDS,
        "sample_rate": RATE,
        "chunk_ms": 1000 * CHUNK // RATE,
        "runs": RUNS,
        "statistic": "median CPU time (time.process_time) per run",
        "synthesis_cpu_s_per_audio_s": SYNTHESIS_CPU_PER_AUDIO_S,
        "machine": {
            "python": platform.python_version(),
            "pyav": av.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "formats": formats,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| format | CPU s / audio s | realtime × | share of synthesis | bytes |")
    print("|---|---:|---:|---:|---:|")
    for name, row in formats.items():
        print(
            f"| {name} | {row['cpu_s_per_audio_s']:.5f} | {row['realtime_multiple']} "
            f"| {row['fraction_of_synthesis']:.3%} | {row['output_bytes']} |"
        )


if __name__ == "__main__":
    main()
