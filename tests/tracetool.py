"""Following a request by its trace: the server's request log lines as they are written (JSON,
by the server's own formatter) from pytest's captured records, and a wait for the line of one
request (a stream's line is written when its body closes, which may be after the client read
its last event: waited for with a generous deadline, never a guess)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

TRACE_HEX = 32
SPAN_HEX = 16


def server_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Every request log line captured so far, parsed back from its JSON."""
    from chattts_server.server.observe import JSONFormatter

    fmt = JSONFormatter()
    return [
        json.loads(fmt.format(r))
        for r in caplog.records
        if r.name == "chattts_server.request" and hasattr(r, "fields")
    ]


def line_of(
    caplog: pytest.LogCaptureFixture, request_id: str, timeout: float = 60
) -> dict[str, Any]:
    """The request log line of ``request_id`` (waiting for it up to ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [x for x in server_lines(caplog) if x["request_id"] == request_id]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no request log line for {request_id}"
        time.sleep(0.02)


def capture(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the server's request lines and the SDK's call records (debug)."""
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    caplog.set_level(logging.DEBUG, logger="chattts_server.client")
