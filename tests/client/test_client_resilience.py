"""Both clients against scripted failures: retries and backoff, Retry-After, deadlines, the
circuit breaker, fallback audio, and streams cut short. Time is a fake clock throughout."""

from __future__ import annotations

import io
import logging
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattts_server.client import (
    AsyncClient,
    AudioChunk,
    BadRequestError,
    CircuitOpenError,
    Client,
    ConnectError,
    Done,
    InternalServerError,
    NotFoundError,
    Progress,
    ProtocolError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
    StreamError,
    StreamEvent,
    StreamInterruptedError,
    Timeout,
    TimeoutError,
)
from chattts_server.client.wav import header

from .conftest import (
    FakeClock,
    Script,
    audio,
    audio_event,
    call,
    collect,
    done_event,
    error,
    progress_event,
    sse,
    sse_event,
)

MakeClient = Callable[..., Client | AsyncClient]


# --- retries -----------------------------------------------------------------------------------


async def test_503s_are_retried_with_jittered_backoff_under_one_request_id(
    make_client: MakeClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(error(503, "overloaded"), error(503, "overloaded"), audio())
    jitter = iter([0.5, 0.75])
    client = make_client(script, random=lambda: next(jitter))
    caplog.set_level(logging.WARNING, logger="chattts_server.client")
    result = await call(client, "synthesize", "hi", format="pcm")
    assert result.data == b"\x01\x00\x02\x00" and not result.fallback
    assert clock.sleeps == [0.5 * 0.5, 0.75 * 1.0]  # rand * min(max, 0.5 * 2**n)
    ids = script.request_ids
    assert len(ids) == 3 and len(set(ids)) == 1 and len(ids[0]) == 32
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2 and all(ids[0] in m and "overloaded" in m for m in retries)
    assert "retry 1/2" in retries[0] and "retry 2/2" in retries[1]


async def test_retry_after_is_honoured_and_capped(
    make_client: MakeClient, clock: FakeClock
) -> None:
    script = Script(
        error(503, "overloaded", retry_after="3"), error(429, "rate_limited", retry_after="99"),
        audio(),
    )  # fmt: skip

    def no_jitter() -> float:
        raise AssertionError("jitter used despite Retry-After")

    client = make_client(script, retries=RetryPolicy(max_retry_after=10.0), random=no_jitter)
    await call(client, "synthesize", "hi")
    assert clock.sleeps == [3.0, 10.0]


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError,
     httpx.ReadError],
)  # fmt: skip
async def test_connection_failures_and_timeouts_are_retried(
    make_client: MakeClient, clock: FakeClock, failure: type[Exception]
) -> None:
    script = Script(failure, audio())
    result = await call(make_client(script), "synthesize", "hi")
    assert result.request_id == "server-id"
    assert clock.sleeps == [0.25] and len(script.requests) == 2


@pytest.mark.parametrize(
    ("failure", "raised"),
    [(httpx.ReadTimeout, TimeoutError), (httpx.ConnectError, ConnectError)],
)
async def test_retries_exhausted_raise_the_sdk_error(
    make_client: MakeClient, failure: type[Exception], raised: type[Exception]
) -> None:
    script = Script(failure, failure, failure)
    with pytest.raises(raised) as info:
        await call(make_client(script), "voices.list")
    assert isinstance(info.value.__cause__, failure)
    assert info.value.request_id == script.request_ids[0]
    assert len(script.requests) == 3


async def test_exhausted_503_carries_the_server_error(make_client: MakeClient) -> None:
    script = Script(*[error(503, "model_not_ready", retry_after="1")] * 2)
    with pytest.raises(ServiceUnavailableError) as info:
        await call(make_client(script, retries=1), "synthesize", "hi")
    err = info.value
    assert (err.status, err.code, err.type, err.retry_after) == (503, "model_not_ready", "t", 1.0)
    assert err.request_id == "server-id" and "scripted model_not_ready" in str(err)
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("status", "raised", "code", "param"),
    [
        (400, BadRequestError, "invalid_value", "seed"),
        (404, NotFoundError, "voice_not_found", "voice"),
        (500, InternalServerError, "internal_error", None),
    ],
)
async def test_input_errors_and_500s_are_not_retried(
    make_client: MakeClient,
    clock: FakeClock,
    status: int,
    raised: type[Exception],
    code: str,
    param: str | None,
) -> None:
    client = make_client(script := Script(error(status, code, param)))
    with pytest.raises(raised) as info:
        await call(client, "synthesize", "hi")
    assert (info.value.code, info.value.param) == (code, param)
    assert clock.sleeps == [] and len(script.requests) == 1


async def test_a_gateway_502_is_retried(make_client: MakeClient) -> None:
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"), audio())
    await call(make_client(script), "synthesize", "hi")
    assert len(script.requests) == 2


async def test_a_non_json_error_body_still_maps_to_its_status(make_client: MakeClient) -> None:
    """A change to the voice library is not repeated after a 500 of any kind."""
    script = Script(httpx.Response(500, text="upstream exploded"))
    with pytest.raises(InternalServerError, match="HTTP 500: upstream exploded") as info:
        await call(make_client(script), "voices.create", "narrator", seed=1)
    assert info.value.code is None and info.value.request_id == script.request_ids[0]
    assert info.value.from_server is False and len(script.requests) == 1


@pytest.mark.parametrize("method", ["synthesize", "voices.list"])
async def test_a_gateways_500_is_retried_like_a_502(make_client: MakeClient, method: str) -> None:
    """Ray Serve's proxy answers the requests of a replica that died with a bare 500 (not the
    server's JSON error): a read or a synthesis is repeated; the server's own 500 is not."""
    answer = audio() if method == "synthesize" else httpx.Response(200, json={"data": []})
    script = Script(httpx.Response(500, text="Internal Server Error"), answer)
    await call(make_client(script), method, *(["hi"] if method == "synthesize" else []))
    assert len(script.requests) == 2
    assert script.request_ids[0] == script.request_ids[1]  # the same request, repeated


async def test_the_deadline_caps_timeouts_and_stops_retries(
    make_client: MakeClient, clock: FakeClock
) -> None:
    script = Script(
        error(503, "overloaded", retry_after="0.4"), error(503, "overloaded", retry_after="2")
    )
    client = make_client(script, timeout=Timeout(connect=5, read=60, total=1.0))
    with pytest.raises(ServiceUnavailableError):
        await call(client, "synthesize", "hi")
    assert clock.sleeps == [0.4]  # the second wait would pass the deadline: no third attempt
    first, second = (r.extensions["timeout"] for r in script.requests)
    assert first["read"] == first["connect"] == 1.0
    assert second["read"] == pytest.approx(0.6)


async def test_a_passed_deadline_stops_before_sending(
    make_client: MakeClient, clock: FakeClock
) -> None:
    def slow_timeout(request: httpx.Request) -> httpx.Response:
        clock.now += 2.0  # the attempt used up the whole deadline
        raise httpx.ReadTimeout("timed out", request=request)

    script = Script(slow_timeout)
    with pytest.raises(TimeoutError):
        await call(make_client(script, timeout=2.0), "synthesize", "hi")
    assert clock.sleeps == [] and len(script.requests) == 1


# --- circuit breaker ---------------------------------------------------------------------------


async def test_breaker_opens_fails_fast_then_half_opens(
    make_client: MakeClient, clock: FakeClock
) -> None:
    script = Script(error(503, "overloaded"), httpx.ConnectError, error(503, "x"), audio())
    client = make_client(script, retries=0, breaker_threshold=2, breaker_cooldown=10.0)
    assert client.breaker is not None
    for raised in (ServiceUnavailableError, ConnectError):
        with pytest.raises(raised):
            await call(client, "synthesize", "hi")
    assert client.breaker.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        await call(client, "voices.list")
    assert info.value.retry_in == 10.0 and len(script.requests) == 2  # nothing sent
    clock.now += 10
    with pytest.raises(ServiceUnavailableError):  # the trial fails: open again
        await call(client, "synthesize", "hi")
    with pytest.raises(CircuitOpenError):
        await call(client, "synthesize", "hi")
    clock.now += 10
    await call(client, "synthesize", "hi")  # the trial succeeds: closed
    assert client.breaker.state == "closed" and len(script.requests) == 4


async def test_input_errors_do_not_count_against_the_breaker(make_client: MakeClient) -> None:
    script = Script(error(503, "overloaded"), *[error(400, "invalid_value", "text")] * 3)
    client = make_client(script, retries=0, breaker_threshold=2)
    with pytest.raises(ServiceUnavailableError):
        await call(client, "synthesize", "hi")
    for _ in range(3):
        with pytest.raises(BadRequestError):
            await call(client, "synthesize", "")
    assert client.breaker is not None and client.breaker.state == "closed"


async def test_rate_limits_count_once_retries_are_exhausted(make_client: MakeClient) -> None:
    script = Script(*[error(429, "rate_limited")] * 4)
    client = make_client(script, retries=1, breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(RateLimitError):
            await call(client, "synthesize", "hi")
    assert client.breaker is not None and client.breaker.state == "open"
    assert len(script.requests) == 4


def test_half_open_admits_one_trial_while_it_runs(clock: FakeClock) -> None:
    script = Script(error(503, "overloaded"), sse([audio_event(0, b"\x00\x00"), done_event()]))
    transport = httpx.MockTransport(script)
    with Client(transport=transport, clock=clock, sleep=clock.sleep, retries=0,
                breaker_threshold=1, breaker_cooldown=5) as client:  # fmt: skip
        with pytest.raises(ServiceUnavailableError):
            client.synthesize("hi")
        clock.now += 5
        trial = client.stream("hi")
        assert isinstance(next(trial), AudioChunk)  # the trial is in flight
        with pytest.raises(CircuitOpenError, match="trial"):
            client.synthesize("hi")
        assert isinstance(next(trial), Done)
        trial.close()
        assert client.breaker is not None and client.breaker.state == "closed"


async def test_health_bypasses_the_breaker_and_reports_loading(make_client: MakeClient) -> None:
    script = Script(
        error(503, "overloaded"), httpx.Response(503, json={"status": "loading"}),
        httpx.Response(200, json={"status": "ready", "model": {"device": "cpu"}}),
    )  # fmt: skip
    client = make_client(script, retries=0, breaker_threshold=1)
    with pytest.raises(ServiceUnavailableError):
        await call(client, "synthesize", "hi")
    loading = await call(client, "health")
    assert (loading.status, loading.ready) == ("loading", False)
    ready = await call(client, "health")
    assert ready.ready and ready.model == {"device": "cpu"}
    assert client.breaker is not None and client.breaker.state == "open"


async def test_health_without_a_status_is_a_protocol_error_or_the_error_status(
    make_client: MakeClient,
) -> None:
    script = Script(httpx.Response(200, text="ok"), httpx.Response(503, text="upstream down"))
    client = make_client(script)
    with pytest.raises(ProtocolError, match="malformed health status") as info:
        await call(client, "health")
    assert info.value.request_id == script.request_ids[0]
    with pytest.raises(ServiceUnavailableError, match="HTTP 503: upstream down"):
        await call(client, "health")


# --- fallback ----------------------------------------------------------------------------------


@pytest.fixture
def fallback_wav(tmp_path: Path) -> Path:
    path = tmp_path / "sorry.wav"
    path.write_bytes(header(16000, 3200) + b"\x00" * 3200)
    return path


async def test_fallback_file_when_retries_and_breaker_give_up(
    make_client: MakeClient, fallback_wav: Path
) -> None:
    script = Script(*[error(503, "overloaded")] * 2, error(500, "internal_error"))
    client = make_client(script, retries=1, breaker_threshold=2, fallback=fallback_wav)
    first = await call(client, "synthesize", "hi", format="mp3")
    assert first.fallback and first.format == "wav" and first.request_id is None
    assert first.data == fallback_wav.read_bytes()
    assert (first.sample_rate, first.duration) == (16000, 0.1)
    second = await call(client, "synthesize", "hi")  # a 500: the server cannot answer
    assert second.fallback
    third = await call(client, "synthesize", "hi")  # circuit open: no request at all
    assert third.fallback and len(script.requests) == 3


async def test_no_fallback_for_input_errors_or_streams(
    make_client: MakeClient, fallback_wav: Path
) -> None:
    script = Script(error(404, "voice_not_found", "voice"), error(503, "overloaded"))
    client = make_client(script, retries=0, fallback=fallback_wav)
    with pytest.raises(NotFoundError):
        await call(client, "synthesize", "hi", voice="ghost")
    with pytest.raises(ServiceUnavailableError):
        await collect(client, "hi")


async def test_fallback_url_is_fetched_once_lazily(make_client: MakeClient) -> None:
    fetched: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.test":
            fetched.append(str(request.url))
            return httpx.Response(200, content=b"ID3mp3", headers={"content-type": "audio/mpeg"})
        return error(503, "overloaded")

    script = Script(*[route] * 4)
    client = make_client(script, retries=0, fallback="https://cdn.test/sorry?v=1")
    assert fetched == []
    for _ in range(2):
        result = await call(client, "synthesize", "hi")
        assert (result.fallback, result.format, result.data) == (True, "mp3", b"ID3mp3")
        assert result.sample_rate is None and result.duration is None
    assert fetched == ["https://cdn.test/sorry?v=1"]


async def test_an_unloadable_fallback_raises_the_original_error(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = make_client(Script(error(503, "overloaded")), retries=0, fallback=tmp_path / "no.wav")
    with pytest.raises(ServiceUnavailableError) as info:
        await call(client, "synthesize", "hi")
    assert any("fallback audio could not be loaded" in n for n in info.value.__notes__)


# --- streams -----------------------------------------------------------------------------------

PCM = [b"\x01\x00\x02\x00", b"\x03\x00"]
GOOD = [audio_event(0, PCM[0]), progress_event(1, 2), audio_event(1, PCM[1]),
        progress_event(2, 2), b": keep-alive\n\n", done_event()]  # fmt: skip


async def test_stream_yields_typed_events_in_order(make_client: MakeClient) -> None:
    script = Script(sse([b"".join(GOOD)[i : i + 7] for i in range(0, len(b"".join(GOOD)), 7)]))
    events = await collect(make_client(script), "hi", voice="alloy")
    assert [type(e) for e in events] == [AudioChunk, Progress, AudioChunk, Progress, Done]
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.pcm for c in chunks] == PCM and [c.seq for c in chunks] == [0, 1]
    request = script.requests[0]
    assert request.url.params["stream"] == "true"
    assert request.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("cut", [httpx.RemoteProtocolError, httpx.ReadTimeout, None])
async def test_a_stream_cut_after_audio_raises_and_is_not_retried(
    make_client: MakeClient, clock: FakeClock, cut: type[Exception] | None
) -> None:
    script = Script(sse(GOOD[:3], fail=cut), sse(GOOD))  # None: a clean end without done
    received: list[StreamEvent] = []
    with pytest.raises(StreamInterruptedError) as info:
        await collect(make_client(script), "hi", received)
    err = info.value
    assert (err.chunks_received, err.bytes_received) == (2, len(PCM[0]) + len(PCM[1]))
    assert [type(e) for e in received] == [AudioChunk, Progress, AudioChunk]
    assert len(script.requests) == 1 and clock.sleeps == []
    assert err.request_id == script.request_ids[0]
    if cut is not None:
        assert isinstance(err.__cause__, TimeoutError | ConnectError)


async def test_a_stream_failing_before_its_first_event_is_retried(
    make_client: MakeClient, clock: FakeClock
) -> None:
    script = Script(
        error(503, "overloaded"), sse([b": keep-alive\n\n"], fail=httpx.ReadError), sse(GOOD)
    )
    events = await collect(make_client(script), "hi")
    assert isinstance(events[-1], Done) and len(events) == 5
    assert len(script.requests) == 3 and len(clock.sleeps) == 2
    assert len(set(script.request_ids)) == 1


async def test_an_error_event_raises_stream_error(make_client: MakeClient) -> None:
    failure = sse_event(
        "error", {"error": {"message": "synthesis failed", "type": "server_error",
                            "param": None, "code": "engine_error", "request_id": "r1"}},
    )  # fmt: skip
    script = Script(sse([audio_event(0, PCM[0]), failure]))
    with pytest.raises(StreamError) as info:
        await collect(make_client(script), "hi")
    err = info.value
    assert (err.code, err.type, err.request_id) == ("engine_error", "server_error", "r1")
    assert err.chunks_received == 1 and len(script.requests) == 1


async def test_stream_refuses_a_format(make_client: MakeClient) -> None:
    with pytest.raises(ValueError, match="format"):
        await collect(make_client(Script()), "hi", format="mp3")


async def test_stream_to_a_path_removes_the_file_when_cut(
    make_client: MakeClient, tmp_path: Path
) -> None:
    target = tmp_path / "cut.wav"
    client = make_client(Script(sse(GOOD[:3], fail=httpx.RemoteProtocolError)))
    with pytest.raises(StreamInterruptedError):
        await call(client, "stream_to", target, "hi")
    assert not target.exists()


async def test_stream_to_a_file_object_writes_exact_sizes(make_client: MakeClient) -> None:
    out = io.BytesIO()
    seen: list[Any] = []
    done = await call(make_client(Script(sse(GOOD))), "stream_to", out, "hi", on_event=seen.append)
    assert isinstance(done, Done) and seen[-1] is done and len(seen) == 5
    assert out.getvalue() == header(24000, 6) + b"".join(PCM)


class CountingSink(io.RawIOBase):
    """A write-only, unseekable file that keeps only a byte count."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.size += len(data)
        return len(data)


def test_stream_to_memory_stays_bounded_for_long_audio(clock: FakeClock) -> None:
    chunk = b"\x11\x22" * 24_000  # one second at 24 kHz
    events = 300  # five minutes of audio: 14 MB of PCM, 19 MB of SSE

    def body() -> Any:
        for seq in range(events):
            yield audio_event(seq, chunk)
        yield done_event()

    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
    sink = CountingSink()
    with Client(transport=httpx.MockTransport(Script(response)), clock=clock) as client:
        tracemalloc.start()
        try:
            client.stream_to(sink, "long text")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sink.size == 44 + events * len(chunk)
    assert peak < 1_000_000  # a few chunks' worth, not the whole stream
