"""Both SDK clients send W3C ``traceparent``: one span per call (kept across its retries), in a
new trace unless the caller gives one with ``traceparent(...)``; they log the trace id with the
request id, and the server's request log line names the same trace — checked on the live
loopback server (sync) and in-process (async, a stream)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from chattts_server.client import AsyncClient, Client, traceparent
from chattts_server.tracecontext import TraceParent, parse
from tracetool import capture, line_of

from .conftest import Script, audio, call, collect, error

MakeClient = Callable[..., Client | AsyncClient]
TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE}-b7ad6b7169203331-01"


def sent(script: Script) -> list[TraceParent]:
    spans = [parse(r.headers["traceparent"]) for r in script.requests]
    assert all(s is not None for s in spans)
    return spans  # type: ignore[return-value]


def call_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The SDK's record of each call's end (debug)."""
    return [
        r
        for r in caplog.records
        if r.name == "chattts_server.client" and r.levelno == logging.DEBUG
    ]


# --- what is sent (scripted server) ------------------------------------------------------------


async def test_each_call_is_a_new_trace_and_its_retries_keep_its_span(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chattts_server.client")
    script = Script(error(503, "overloaded"), audio(), audio())
    client = make_client(script, retries=2)
    await call(client, "synthesize", "Hi.", format="pcm")
    await call(client, "synthesize", "Hi.", format="pcm")
    first, retry, second = sent(script)
    assert first == retry and first.sampled  # one span for the call, across its attempts
    assert second.trace_id != first.trace_id
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert f"trace {first.trace_id}" in warning.getMessage()
    assert getattr(warning, "trace_id") == first.trace_id  # noqa: B009
    ends = call_records(caplog)
    assert [getattr(r, "trace_id") for r in ends] == [first.trace_id, second.trace_id]  # noqa: B009
    assert [getattr(r, "span_id") for r in ends] == [first.span_id, second.span_id]  # noqa: B009
    assert ends[0].getMessage() == (
        f"POST /v1/tts at http://tts.test: ok (request {script.request_ids[0]}, "
        f"trace {first.trace_id})"
    )


async def test_calls_inside_traceparent_continue_the_callers_trace(
    make_client: MakeClient,
) -> None:
    script = Script(audio(), audio(), audio())
    client = make_client(script)
    with traceparent(CALLER) as parent:
        assert parent is not None and parent.trace_id == TRACE
        await call(client, "synthesize", "Hi.", format="pcm")
        await call(client, "synthesize", "Hi.", format="pcm")
    await call(client, "synthesize", "Hi.", format="pcm")
    a, b, outside = sent(script)
    assert a.trace_id == b.trace_id == TRACE and a.span_id != b.span_id
    assert parent.span_id not in (a.span_id, b.span_id)  # each call is a span of its own
    assert outside.trace_id != TRACE


async def test_an_invalid_or_missing_caller_trace_starts_new_ones(make_client: MakeClient) -> None:
    script = Script(audio(), audio(), audio())
    client = make_client(script)
    with traceparent(f"00-{TRACE.upper()}-b7ad6b7169203331-01") as parent:
        assert parent is None
        await call(client, "synthesize", "Hi.", format="pcm")
        await call(client, "synthesize", "Hi.", format="pcm")
    with traceparent(None):
        await call(client, "synthesize", "Hi.", format="pcm")
    assert len({s.trace_id for s in sent(script)} | {TRACE}) == 4


async def test_a_failed_call_logs_its_trace(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chattts_server.client")
    script = Script(error(404, "voice_not_found", "voice"))
    client = make_client(script)
    with pytest.raises(Exception, match="scripted"):
        await call(client, "synthesize", "Hi.", voice="nobody")
    (end,) = call_records(caplog)
    assert getattr(end, "trace_id") == sent(script)[0].trace_id  # noqa: B009
    assert "failed" in end.getMessage() and "NotFoundError" in end.getMessage()


# --- against the server: the client's logged trace is the server's -----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("given", [None, CALLER], ids=["new-trace", "callers-trace"])
def test_the_server_logs_the_trace_the_sync_client_logged(
    sync_client: Client, caplog: pytest.LogCaptureFixture, given: str | None
) -> None:
    capture(caplog)
    with traceparent(given):
        result = sync_client.synthesize("Hi.", seed=3, format="pcm")
    (end,) = call_records(caplog)
    client_trace: str = getattr(end, "trace_id")  # noqa: B009
    assert getattr(end, "request_id") == result.request_id  # noqa: B009
    assert f"trace {client_trace}" in end.getMessage()
    if given:
        assert client_trace == TRACE
    line = line_of(caplog, str(result.request_id))
    assert line["trace_id"] == client_trace
    assert line["parent_span_id"] == getattr(end, "span_id")  # noqa: B009
    assert line["span_id"] != line["parent_span_id"]


@pytest.mark.slow
async def test_the_server_logs_the_trace_of_an_async_stream(
    async_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    capture(caplog)
    with traceparent(CALLER):
        events = await collect(async_client, "Hello. Two sentences.", seed=4)
    done: Any = events[-1]
    (end,) = call_records(caplog)
    assert getattr(end, "trace_id") == TRACE  # noqa: B009
    line = line_of(caplog, done.request_id)
    assert line["trace_id"] == TRACE and line["stream"] is True
    assert line["parent_span_id"] == getattr(end, "span_id")  # noqa: B009
