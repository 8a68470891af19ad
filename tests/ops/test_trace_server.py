"""The server's side of W3C trace context, on the live loopback server (tiny model): it takes a
caller's ``traceparent``, makes its own span in that trace (a new trace when the header is
missing or invalid), returns it as ``traceparent`` and logs the trace id beside the request id;
``/metrics`` has the gauges the alerts compare with."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from chattts_server.tracecontext import parse
from conftest import LiveServer, wait_idle
from tracetool import capture, line_of

pytestmark = pytest.mark.slow

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
BODY: dict[str, Any] = {"text": "Hi.", "seed": 3, "format": "pcm"}


@pytest.fixture
def ready(live: LiveServer, http: httpx.Client) -> httpx.Client:
    wait_idle(live)
    return http


def test_a_callers_trace_is_continued_returned_and_logged(
    ready: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    capture(caplog)
    r = ready.post("/v1/tts", json=BODY, headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert r.status_code == 200
    span = parse(r.headers["traceparent"])
    assert span is not None and span.trace_id == TRACE and span.sampled
    assert span.span_id != SPAN
    line = line_of(caplog, r.headers["x-request-id"])
    assert line["trace_id"] == TRACE
    assert line["span_id"] == span.span_id and line["parent_span_id"] == SPAN
    assert list(line)[list(line).index("request_id") + 1] == "trace_id"  # side by side


def test_not_sampled_stays_not_sampled(ready: httpx.Client) -> None:
    r = ready.get("/healthz", headers={"traceparent": f"00-{TRACE}-{SPAN}-00"})
    span = parse(r.headers["traceparent"])
    assert span is not None and span.trace_id == TRACE and not span.sampled


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("traceparent", f"00-{'0' * 32}-{SPAN}-01")],
        [("traceparent", f"00-{TRACE.upper()}-{SPAN}-01")],
        [("traceparent", f"00-{TRACE}-{SPAN}-01"), ("traceparent", f"00-{TRACE}-{SPAN}-01")],
    ],
    ids=["none", "zero-trace", "uppercase", "two-headers"],
)
def test_no_valid_traceparent_starts_a_new_trace(
    ready: httpx.Client, caplog: pytest.LogCaptureFixture, headers: list[tuple[str, str]]
) -> None:
    capture(caplog)
    r = ready.post("/v1/tts", json=BODY, headers=httpx.Headers(headers))
    assert r.status_code == 200
    span = parse(r.headers["traceparent"])
    assert span is not None and span.trace_id != TRACE and span.sampled
    line = line_of(caplog, r.headers["x-request-id"])
    assert (line["trace_id"], line["span_id"]) == (span.trace_id, span.span_id)
    assert line["parent_span_id"] is None


def test_errors_carry_the_trace_too(ready: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)
    tp = {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    missing = ready.post("/v1/tts", json={"text": "Hi.", "voice": "nobody-here"}, headers=tp)
    assert missing.status_code == 404
    assert parse(missing.headers["traceparent"]).trace_id == TRACE  # type: ignore[union-attr]
    line = line_of(caplog, missing.headers["x-request-id"])
    assert line["trace_id"] == TRACE and line["http_status"] == 404
    bad = ready.post("/v1/tts", json={"text": ""}, headers=tp)
    assert bad.status_code == 400 and TRACE in bad.headers["traceparent"]


def test_metrics_have_the_gauges_the_alerts_compare_with(live: LiveServer) -> None:
    text = httpx.get(f"{live.url}/metrics", timeout=30).text
    settings = live.app.state.settings
    values = dict(re.findall(r"^(chattts_\w+) (\S+)$", text, re.M))
    assert float(values["chattts_ready"]) == 1.0
    assert float(values["chattts_queue_limit"]) == settings.max_queue
    assert float(values["chattts_in_flight_limit"]) == settings.max_batch


def test_other_lines_logged_while_handling_a_request_name_its_trace() -> None:
    import json
    import logging

    from chattts_server.server.observe import JSONFormatter, RequestSpan, current_span

    span = RequestSpan.from_headers([f"00-{TRACE}-{SPAN}-01".encode()])
    record = logging.LogRecord("chattts_server.x", logging.ERROR, __file__, 1, "boom", (), None)
    assert "trace_id" not in json.loads(JSONFormatter().format(record))
    token = current_span.set(span)
    try:
        assert json.loads(JSONFormatter().format(record))["trace_id"] == TRACE
    finally:
        current_span.reset(token)


async def test_an_unhandled_error_carries_the_trace(engine: Any) -> None:
    """The 500 of an unexpected exception is answered outside the request-id middleware: it
    still returns the request's span (and the id)."""
    from chattts_server.server import create_app
    from conftest import make_settings

    app = create_app(make_settings(), engine)

    async def boom() -> Any:
        raise RuntimeError("boom")

    app.state.voices.list_all = boom
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/v1/voices", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert parse(r.headers["traceparent"]).trace_id == TRACE  # type: ignore[union-attr]
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]
