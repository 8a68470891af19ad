"""A request's record ends exactly once, whatever the path (issue 15, item 2)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from chattts_server.engine import SynthesisCancelledError
from chattts_server.server.errors import DeadlineExceededError
from chattts_server.server.observe import Metrics, RequestRecord
from chattts_server.server.speech import ClosingStreamingResponse


def record() -> RequestRecord:
    return RequestRecord(request_id="rid", route="/v1/tts", metrics=Metrics(), text="x")


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if hasattr(r, "fields")]


async def test_the_first_outcome_wins_and_the_record_ends_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    rec, ended = record(), []
    rec.on_end(lambda: ended.append("slot"))
    rec.on_end(lambda: ended.append("job"))
    rec.cancelled()
    rec.failed(RuntimeError("later"))
    rec.done()
    rec.done()
    assert ended == ["job", "slot"]  # last added, first run; once
    assert [(x["status"], x["http_status"]) for x in lines(caplog)] == [("cancelled", 499)]


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (DeadlineExceededError("late"), ("error", 504)),
        (SynthesisCancelledError("stop"), ("cancelled", 499)),
        (asyncio.CancelledError(), ("cancelled", 499)),
        (RuntimeError("boom"), ("error", 500)),
    ],
)
async def test_lifetime_records_how_a_request_failed(
    caplog: pytest.LogCaptureFixture, exc: BaseException, outcome: tuple[str, int]
) -> None:
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    rec = record()
    with pytest.raises(type(exc)):
        async with rec.lifetime():
            raise exc
    assert [(x["status"], x["http_status"]) for x in lines(caplog)] == [outcome]


async def test_a_handed_over_record_ends_when_the_body_closes_even_unstarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client is gone before the first byte: the body never runs, yet the record ends
    (cancelled), its clean-ups run (stream slot, synthesis) and the line is written."""
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    rec, ended = record(), []
    rec.on_end(lambda: ended.append("slot"))
    started = []

    async def body() -> Any:
        started.append(True)
        yield b"never sent"

    async with rec.lifetime():
        response = ClosingStreamingResponse(body(), rec, media_type="audio/wav")
    assert not lines(caplog)  # the response owns the record now

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: Any) -> None:
        raise OSError("client gone")

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "POST", "path": "/"}
    await response(scope, receive, send)
    assert not started and ended == ["slot"]
    assert [(x["status"], x["http_status"]) for x in lines(caplog)] == [("cancelled", 499)]


async def test_a_body_that_ran_to_its_end_leaves_the_outcome_ok(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chattts_server.request")
    rec = record()

    async def body() -> Any:
        yield b"audio"

    async with rec.lifetime():
        response = ClosingStreamingResponse(body(), rec, media_type="audio/wav")
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "POST", "path": "/"}
    await response(scope, receive, send)
    assert sent[1]["body"] == b"audio"
    assert [x["status"] for x in lines(caplog)] == ["ok"]
