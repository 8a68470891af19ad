"""Streamed audio against the whole-file audio of the same request.

Streamed responses are decoded in windows (``engine/stream.py``); a whole file is decoded in one
shot. They are the same samples except near chunk boundaries, where the window decoder's
lookahead bounds the difference: at most :data:`STREAM_BOUND` of the whole audio's RMS (the
engine's guard, ``tests/engine/test_streaming.py``), plus one step of int16 rounding."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import numpy as np

STREAM_BOUND = 0.002  # 0.2% of the RMS, about −54 dB


def pcm16(audio: bytes | np.ndarray) -> np.ndarray:
    if isinstance(audio, bytes | bytearray | memoryview):
        return np.frombuffer(audio, "<i2")
    return np.asarray(audio)


def assert_stream_matches(streamed: bytes | np.ndarray, whole: bytes | np.ndarray) -> None:
    """Same length; every sample within the bound (int16 samples, as bytes or an array)."""
    s, w = pcm16(streamed).astype(np.int64), pcm16(whole).astype(np.int64)
    assert s.size == w.size, f"streamed {s.size} samples, whole {w.size}"
    assert w.size > 0
    rms = float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))
    worst = int(np.max(np.abs(s - w)))
    bound = STREAM_BOUND * rms + 1
    assert worst <= bound, f"streamed differs by {worst} (bound {bound:.1f}, RMS {rms:.0f})"


class Drain(threading.Thread):
    """Reads a streamed response until told to stop, then closes it (the server cancels)."""

    def __init__(self, client: httpx.Client, resp: httpx.Response, lines: Iterator[str]) -> None:
        super().__init__(daemon=True)
        self.client, self.resp, self.lines = client, resp, lines
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for _ in self.lines:
                if self.stop.is_set():
                    break
        except httpx.HTTPError:
            pass
        finally:
            self.resp.close()
            self.client.close()
