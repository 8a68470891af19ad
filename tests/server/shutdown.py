"""A request that is certainly in flight when SIGTERM arrives and then finishes on its own, for
the graceful-shutdown tests (a server process here, and the container in tests/image/).

The request streams about 77 MB of WAV: 80 one-clause segments of a fixed token count with
10 s of exact silence after each, at 48 kHz. The client reads the first bytes, then holds off
reading with a small receive buffer: the server cannot finish while it waits, because what is
left is many times what the socket buffers (the client's 128 KB, the server's at most 4 MB) and
the server's own bounded buffer (4 chunks of at most ~1 MB) can hold. So SIGTERM arrives while
the request runs, whatever the machine's speed; once the client reads on, the request ends by
itself after a bounded amount of work (80 × 8 GPT steps on the tiny model)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

CLAUSES = 80
PAUSE_MS = 10_000
SAMPLE_RATE = 48_000
TOKENS = 8
RCVBUF = 64 * 1024  # the kernel doubles it
WAIT_S = 300  # generous deadlines: a loaded 2-core machine is slow, never wrong


def in_flight_body() -> dict[str, Any]:
    return {
        "text": ", ".join(["la"] * CLAUSES) + ".",
        "seed": 1,
        "manual_seed": 1,
        "format": "wav",
        "sample_rate": SAMPLE_RATE,
        "stream": True,
        "pauses": {"comma": PAUSE_MS},
        "extensions": {"min_new_tokens": TOKENS, "max_new_tokens": TOKENS},
    }


def silence_bytes() -> int:
    """The least the whole answer holds: its pauses alone (16-bit mono)."""
    return (CLAUSES - 1) * PAUSE_MS * SAMPLE_RATE // 1000 * 2


def small_buffer_client(url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)])
    return httpx.Client(base_url=url, transport=transport, timeout=httpx.Timeout(WAIT_S))


def wait_until_refusing(url: str) -> None:
    """Wait until the server no longer takes new requests: its shutdown has begun."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/healthz", timeout=5)
        except httpx.TransportError:
            return
        if r.status_code != 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} still answers {WAIT_S} s after SIGTERM")


def finish_after_sigterm(url: str, send_sigterm: Callable[[], None]) -> tuple[bytes, int]:
    """Start the request, read its first bytes, send SIGTERM while it is held in flight, wait
    until the server refuses new connections, then read the rest. Returns the first bytes and
    the body's whole length; an answer cut short raises (httpx checks the chunked framing)."""
    with (
        small_buffer_client(url) as client,
        client.stream("POST", "/v1/tts", json=in_flight_body()) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("audio/wav")
        chunks = response.iter_raw(64 * 1024)
        first = next(chunks)
        send_sigterm()
        wait_until_refusing(url)
        total = len(first) + sum(len(c) for c in chunks)
    return first, total


def log_records(text: str) -> list[dict[str, Any]]:
    """The server's JSON log lines (other lines skipped)."""
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
