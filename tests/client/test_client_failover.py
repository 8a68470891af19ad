"""Failover between servers: ``base_url=[primary, secondary, …]``. The endpoint choice as pure
logic (:class:`Route`, a fake clock), then both clients against scripted fake servers told
apart by host, then the CLI's ``--url`` list against the live server and a dead port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chattts_server.client import (
    AsyncClient,
    AudioChunk,
    BadRequestError,
    ChatTTSError,
    CircuitBreaker,
    CircuitOpenError,
    Client,
    ConnectError,
    Done,
    Endpoint,
    InternalServerError,
    NotFoundError,
    ProtocolError,
    ServiceUnavailableError,
    StreamInterruptedError,
    Timeout,
    TimeoutError,
)
from chattts_server.client._policy import Route, base_urls
from chattts_server.client.cli import add_say_parser, server_urls
from chattts_server.client.wav import header
from conftest import LiveServer, wait_idle

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
)

A, B, C = "http://a.test", "http://b.test", "http://c.test"
GOOD = [audio_event(0, b"\x01\x00"), progress_event(1, 1), done_event()]


Failure = type[Exception] | tuple[int, str]


def overloaded() -> httpx.Response:
    return error(503, "overloaded")


def failing(failure: Failure) -> type[Exception] | httpx.Response:
    """A scripted failure: an httpx exception class, or a fresh error response."""
    return failure if isinstance(failure, type) else error(*failure)


# --- the endpoint choice, without I/O --------------------------------------------------------


def endpoints(clock: FakeClock, *urls: str, threshold: int = 1) -> list[Endpoint]:
    return [Endpoint(u, CircuitBreaker(threshold, 10.0, clock)) for u in urls]


def breaker(endpoint: Endpoint) -> CircuitBreaker:
    assert endpoint.breaker is not None
    return endpoint.breaker


def test_a_call_starts_on_the_first_endpoint_whose_breaker_admits_it(clock: FakeClock) -> None:
    a, b, c = endpoints(clock, A, B, C)
    route = Route([a, b, c])
    route.admit()
    assert route.attempt() is a and not route.trial
    breaker(a).failure()  # threshold 1: open
    route = Route([a, b, c])
    route.admit()
    assert route.attempt() is b
    clock.now += 10  # a is half-open: the next call is its trial
    route = Route([a, b, c])
    route.admit()
    assert route.attempt() is a and route.trial
    other = Route([a, b, c])  # while the trial runs, a is skipped
    other.admit()
    assert other.attempt() is b


def test_all_circuits_open_fails_fast_with_the_soonest_trial(clock: FakeClock) -> None:
    a, b = endpoints(clock, A, B)
    breaker(a).failure()
    clock.now += 4
    breaker(b).failure()
    with pytest.raises(CircuitOpenError, match="all 2 endpoints") as info:
        Route([a, b]).admit()
    assert info.value.retry_in == pytest.approx(6.0)
    (only,) = endpoints(clock, A)
    breaker(only).failure()
    with pytest.raises(CircuitOpenError, match="consecutive failures"):  # the breaker's own
        Route([only]).admit()


def test_failover_takes_the_next_untried_admitted_endpoint_and_blames_the_one_left(
    clock: FakeClock,
) -> None:
    a, b, c = endpoints(clock, A, B, C, threshold=2)
    breaker(b).failure()
    breaker(b).failure()  # b is open
    route = Route([a, b, c])
    route.admit()
    route.attempt()
    failed = ServiceUnavailableError("busy", status=503)
    assert route.failover(failed)
    assert route.attempt() is c  # b skipped
    assert breaker(a)._failures == 1 and breaker(a).state == "closed"
    assert not route.failover(failed)  # none left in this round: the call stays on c
    assert route.endpoint is c and breaker(c)._failures == 0
    route.end(failed)
    assert breaker(c)._failures == 1


def test_a_new_round_starts_again_from_the_first_endpoint(clock: FakeClock) -> None:
    a, b = endpoints(clock, A, B, threshold=5)
    route = Route([a, b])
    route.admit()
    failed = ConnectError("refused", request_sent=False)
    assert route.attempt() is a and route.failover(failed)
    assert route.attempt() is b and not route.failover(failed)
    route.next_round(failed)
    assert route.attempt() is a  # the primary again, after the backoff
    assert (breaker(a)._failures, breaker(b)._failures) == (1, 1)
    route.end(None)
    assert (breaker(a)._failures, breaker(b)._failures) == (0, 1)


def test_one_verdict_per_visit_so_one_endpoint_counts_calls(clock: FakeClock) -> None:
    (a,) = endpoints(clock, A, threshold=5)
    (b,) = endpoints(clock, B)
    breaker(b).failure()  # open
    route = Route([a, b])
    route.admit()
    failed = ServiceUnavailableError("busy", status=503)
    for _ in range(3):  # a, (b open), a, a: one visit of a
        assert route.attempt() is a
        assert not route.failover(failed)
        route.next_round(failed)
    assert breaker(a)._failures == 0
    route.end(failed)
    assert breaker(a)._failures == 1


def test_verdicts_of_the_last_visit(clock: FakeClock) -> None:
    (a,) = endpoints(clock, A)
    breaker(a).failure()
    clock.now += 10
    for outcome, state in [
        (asyncio.CancelledError(), "half-open"),  # no verdict: the trial may go again
        (NotFoundError("no", status=404), "closed"),  # the server answered
    ]:
        route = Route([a])
        route.admit()
        assert route.trial
        route.end(outcome)
        assert breaker(a).state == state
    route = Route([a])
    route.admit()
    route.end(GeneratorExit())  # a consumer leaving a healthy stream
    assert breaker(a).state == "closed"


def test_unguarded_calls_ignore_the_breakers(clock: FakeClock) -> None:
    a, b = endpoints(clock, A, B)
    breaker(a).failure()
    route = Route([a, b], guarded=False)
    route.admit()
    assert route.attempt() is a
    assert route.failover(ConnectError("refused")) and route.attempt() is b
    route.end(None)
    assert breaker(a).state == "open" and breaker(b)._failures == 0


def test_base_urls_are_checked_and_passwords_masked() -> None:
    assert base_urls("http://a/") == ("http://a",)
    assert base_urls(["http://a/", " http://b "]) == ("http://a", "http://b")
    assert base_urls(("http://a", "http://b/tts/")) == ("http://a", "http://b/tts")
    for bad in ([], ["http://a", ""], ["http://a", "http://a/"]):
        with pytest.raises(ValueError):
            base_urls(bad)
    not_a_list: Any = {"http://a"}
    with pytest.raises(TypeError):
        base_urls(not_a_list)
    assert Endpoint("https://u:secret@h:1/p").display == "https://u:***@h:1/p"
    assert Endpoint("https://u@h").display == "https://u@h"


# --- both clients, against fake servers ------------------------------------------------------

MakeServers = Callable[..., Client | AsyncClient]


@pytest.fixture(params=["sync", "async"])
async def servers(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[MakeServers]:
    """``servers(script_a, script_b, …, **options)``: a Client or AsyncClient of
    ``[A, B, …]``, each URL answered by its script."""
    made: list[Client | AsyncClient] = []

    def make(*scripts: Script, **options: Any) -> Client | AsyncClient:
        urls = [A, B, C][: len(scripts)]
        routes = dict(zip(urls, scripts, strict=True))

        def route(r: httpx.Request) -> httpx.Response:
            return routes[f"{r.url.scheme}://{r.url.host}"](r)

        options = {"clock": clock, "random": lambda: 0.5, **options}
        transport = httpx.MockTransport(route)
        client: Client | AsyncClient
        if request.param == "sync":
            client = Client(urls, transport=transport, sleep=clock.sleep, **options)
        else:
            client = AsyncClient(urls, transport=transport, sleep=clock.asleep, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


def states(client: Client | AsyncClient) -> list[str]:
    return [breaker(e).state for e in client.endpoints]


@pytest.mark.parametrize(
    "failure",
    [(503, "overloaded"), (429, "rate_limited"), (502, "bad_gateway"), httpx.ConnectError,
     httpx.ReadTimeout, httpx.RemoteProtocolError],
)  # fmt: skip
async def test_a_failure_moves_the_call_to_the_next_server_at_once(
    servers: MakeServers, clock: FakeClock, failure: Failure, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Script(failing(failure)), Script(audio())
    caplog.set_level(logging.WARNING, logger="chattts_server.client")
    result = await call(servers(a, b), "synthesize", "hi")
    assert (result.endpoint, result.fallback) == (B, False)
    assert clock.sleeps == []  # another server: no backoff
    assert a.request_ids == b.request_ids and len(a.requests) == len(b.requests) == 1
    assert str(a.requests[0].url) == f"{A}/v1/tts"
    (message,) = [r.getMessage() for r in caplog.records]
    assert f"at {A}" in message and f"failing over to {B}" in message


async def test_failover_is_not_a_retry(servers: MakeServers, clock: FakeClock) -> None:
    a, b = Script(overloaded()), Script(audio())
    assert (await call(servers(a, b, retries=0), "synthesize", "hi")).endpoint == B


async def test_the_primary_is_preferred_until_its_circuit_opens(
    servers: MakeServers, clock: FakeClock
) -> None:
    a = Script(httpx.ConnectError, httpx.ConnectError, audio())
    b = Script(*[audio()] * 3)
    client = servers(a, b, breaker_threshold=2, breaker_cooldown=10.0)
    for _ in range(2):  # each tries the primary first
        assert (await call(client, "synthesize", "hi")).endpoint == B
    assert states(client) == ["open", "closed"] and len(a.requests) == 2
    assert (await call(client, "synthesize", "hi")).endpoint == B  # a skipped, not asked
    assert len(a.requests) == 2 and len(b.requests) == 3
    clock.now += 10  # half-open: the next call is a's trial, and it succeeds
    assert (await call(client, "synthesize", "hi")).endpoint == A
    assert states(client) == ["closed", "closed"] and clock.sleeps == []


async def test_when_every_server_fails_retries_go_round_them_all(
    servers: MakeServers, clock: FakeClock
) -> None:
    a = Script(*[overloaded()] * 3)
    b = Script(*[httpx.Response(502, text="bad gateway")] * 3)
    client = servers(a, b, breaker_threshold=None)
    with pytest.raises(InternalServerError) as info:  # 502: no class of its own
        await call(client, "synthesize", "hi")
    assert (info.value.status, info.value.endpoint) == (502, B)
    assert len(a.requests) == len(b.requests) == 3  # a b, wait, a b, wait, a b
    assert clock.sleeps == [0.25, 0.5]
    assert len(set(a.request_ids + b.request_ids)) == 1


async def test_a_retry_with_the_others_open_stays_on_its_server(
    servers: MakeServers, clock: FakeClock
) -> None:
    a, b = Script(overloaded(), audio()), Script()
    client = servers(a, b, breaker_threshold=1)
    breaker(client.endpoints[1]).failure()
    assert (await call(client, "synthesize", "hi")).endpoint == A  # a, (b open), wait, a
    assert states(client) == ["closed", "open"] and clock.sleeps == [0.25]


async def test_a_server_whose_circuit_opened_during_the_call_is_not_retried(
    servers: MakeServers, clock: FakeClock
) -> None:
    a, b = Script(overloaded()), Script(overloaded(), audio())
    client = servers(a, b, breaker_threshold=1)
    assert (await call(client, "synthesize", "hi")).endpoint == B  # a (opens), b, wait, b
    assert states(client) == ["open", "closed"] and clock.sleeps == [0.25]


@pytest.mark.parametrize(
    ("status", "raised"),
    [(400, BadRequestError), (404, NotFoundError), (500, InternalServerError)],
)
async def test_answers_that_are_not_retried_do_not_fail_over(
    servers: MakeServers, status: int, raised: type[ChatTTSError]
) -> None:
    a, b = Script(error(status, "scripted")), Script()
    with pytest.raises(raised) as info:
        await call(servers(a, b), "synthesize", "hi")
    assert info.value.endpoint == A and b.requests == []


async def test_a_malformed_answer_does_not_fail_over(servers: MakeServers) -> None:
    a, b = Script(httpx.Response(200, text="<html>portal</html>")), Script()
    with pytest.raises(ProtocolError):
        await call(servers(a, b), "synthesize", "hi")
    assert b.requests == []


async def test_every_circuit_open_fails_fast_or_falls_back(
    servers: MakeServers, clock: FakeClock, tmp_path: Path
) -> None:
    fallback = tmp_path / "sorry.wav"
    fallback.write_bytes(header(16000, 2) + b"\x00\x00")
    a, b = Script(overloaded()), Script(overloaded())
    client = servers(a, b, retries=0, breaker_threshold=1, fallback=fallback)
    first = await call(client, "synthesize", "hi")  # a, b: both open now
    assert first.fallback and first.endpoint is None
    with pytest.raises(CircuitOpenError, match="all 2 endpoints") as info:
        await call(client, "voices.list")
    assert info.value.endpoint is None and info.value.retry_in == 30.0
    assert (await call(client, "synthesize", "hi")).fallback
    assert len(a.requests) == len(b.requests) == 1


async def test_no_failover_once_the_deadline_passed(servers: MakeServers, clock: FakeClock) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        clock.now += 5.0
        raise httpx.ReadTimeout("timed out", request=request)

    a, b = Script(slow), Script()
    with pytest.raises(TimeoutError) as info:
        await call(servers(a, b, timeout=Timeout(connect=1, read=5, total=5)), "synthesize", "x")
    assert info.value.endpoint == A and b.requests == []


async def test_a_stream_that_failed_before_its_first_event_moves_on(
    servers: MakeServers, clock: FakeClock
) -> None:
    a = Script(sse([b": keep-alive\n\n"], fail=httpx.ReadError))
    b = Script(sse(GOOD))
    events = await collect(servers(a, b), "hi")
    done = events[-1]
    assert isinstance(done, Done) and done.endpoint == B and clock.sleeps == []
    assert a.request_ids == b.request_ids


async def test_a_stream_that_delivered_audio_is_interrupted_not_moved(
    servers: MakeServers,
) -> None:
    a, b = Script(sse(GOOD[:1], fail=httpx.RemoteProtocolError)), Script()
    received: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await collect(servers(a, b), "hi", received)
    assert [type(e) for e in received] == [AudioChunk]
    assert info.value.endpoint == A and info.value.chunks_received == 1 and b.requests == []


async def test_reads_of_the_voice_library_fail_over(servers: MakeServers) -> None:
    voices = httpx.Response(200, json={"data": [{"id": "alloy", "kind": "builtin"}]})
    a, b = Script(httpx.ReadError), Script(voices)
    assert [v.id for v in await call(servers(a, b), "voices.list")] == ["alloy"]
    assert len(b.requests) == 1


def created() -> httpx.Response:
    return httpx.Response(201, json={"id": "narrator", "kind": "seed", "seed": 1})


@pytest.mark.parametrize("failure", [httpx.ConnectError, (503, "overloaded"), (429, "slow_down")])
async def test_a_change_moves_on_when_the_server_surely_did_nothing(
    servers: MakeServers, failure: Failure
) -> None:
    a, b = Script(failing(failure)), Script(created())
    voice = await call(servers(a, b), "voices.create", "narrator", seed=1)
    assert voice.id == "narrator" and len(b.requests) == 1


@pytest.mark.parametrize(
    "failure", [httpx.ReadError, httpx.ReadTimeout, (502, "bad_gateway"), (504, "timeout")]
)
async def test_a_change_stops_where_the_server_may_have_acted(
    servers: MakeServers, failure: Failure
) -> None:
    a, b = Script(failing(failure)), Script()
    with pytest.raises(ChatTTSError) as info:
        await call(servers(a, b), "voices.create", "narrator", seed=1)
    assert info.value.endpoint == A and b.requests == []


async def test_health_asks_each_server_in_turn_whatever_the_breakers(
    servers: MakeServers,
) -> None:
    loading = httpx.Response(503, json={"status": "loading"})
    ready = httpx.Response(200, json={"status": "ready", "model": {}})
    a, b = Script(overloaded(), httpx.ConnectError, loading), Script(overloaded(), ready)
    client = servers(a, b, retries=0, breaker_threshold=1)
    with pytest.raises(ServiceUnavailableError) as info:
        await call(client, "synthesize", "hi")
    assert info.value.endpoint == B and states(client) == ["open", "open"]
    health = await call(client, "health")  # a refused: b answers
    assert (health.ready, health.endpoint) == (True, B)
    loading_now = await call(client, "health")  # a "loading" 503 is an answer: no failover
    assert (loading_now.ready, loading_now.endpoint) == (False, A)


async def test_errors_of_a_single_server_client_name_it(make_client: Any) -> None:
    client = make_client(Script(error(404, "voice_not_found")))
    with pytest.raises(NotFoundError) as info:
        await call(client, "synthesize", "hi")
    assert info.value.endpoint == "http://tts.test" == client.base_url
    assert [e.url for e in client.endpoints] == ["http://tts.test"]


def test_the_first_server_is_the_base_url_and_its_breaker_the_breaker() -> None:
    with Client(("http://a/", "http://b")) as client:
        assert client.base_url == "http://a" and [e.url for e in client.endpoints] == [
            "http://a", "http://b",
        ]  # fmt: skip
        assert client.breaker is client.endpoints[0].breaker is not None
        assert client.endpoints[1].breaker is not client.breaker
    with Client(["http://a"], breaker_threshold=None) as client:
        assert client.breaker is None and client.endpoints[0].breaker is None
    with pytest.raises(ValueError, match="twice"):
        AsyncClient(["http://a", "http://a/"])


# --- the CLI: --url may repeat ---------------------------------------------------------------


def test_server_urls_come_from_the_options_else_the_environment() -> None:
    urls = server_urls(["http://a", "http://b,http://c"], "http://x")
    assert urls == ["http://a", "http://b", "http://c"]
    assert server_urls(None, " http://x , http://y ,") == ["http://x", "http://y"]
    assert server_urls(None, None) == server_urls([], "") == ["http://localhost:9700"]
    parser = argparse.ArgumentParser()
    add_say_parser(parser.add_subparsers())
    args = parser.parse_args(["say", "hi", "--url", "http://a", "--url", "http://b"])
    assert args.url == ["http://a", "http://b"]


def dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def run_say(*args: str, url_env: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CHATTTS_SERVER_URL"}
    if url_env is not None:
        env["CHATTTS_SERVER_URL"] = url_env
    return subprocess.run(
        [sys.executable, "-m", "chattts_server.client.cli", "say", *args],
        capture_output=True, env=env, timeout=120,
    )  # fmt: skip


def test_say_fails_over_from_a_dead_server(live: LiveServer, tmp_path: Path) -> None:
    wait_idle(live)
    dead = dead_url()
    out = tmp_path / "a.wav"
    r = run_say("Hi.", "-o", str(out), "--url", dead, "--url", live.url, "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"RIFF")
    assert f"failing over to {live.url}".encode() in r.stderr
    r = run_say("Hi.", "-o", str(out), "--stream", url_env=f"{dead},{live.url}")
    assert r.returncode == 0, r.stderr
    assert b"failing over" in r.stderr and b"wrote" in r.stderr


def test_say_names_the_server_of_the_error(live: LiveServer, tmp_path: Path) -> None:
    r = run_say("hi", "--voice", "ghost", "-o", str(tmp_path / "x.wav"),
                "--url", f"{dead_url()},{live.url}")  # fmt: skip
    assert r.returncode == 1
    assert f"at {live.url}]".encode() in r.stderr and b"voice_not_found" in r.stderr
