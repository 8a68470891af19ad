"""Client tests: scripted fake servers (httpx.MockTransport), a fake clock, and clients of the
real app — sync over the root conftest's ``live`` loopback server, async in-process (ASGI), and
``secure``, one that wants mTLS and an API key, with its ``certs`` (``tests/securetool.py``)."""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from chattts_server.client import AsyncClient, Client, StreamEvent
from conftest import LiveServer, make_settings, wait_idle
from securetool import certs, secure  # noqa: F401 (the mTLS + API-key server's fixtures)


class FakeClock:
    """A monotonic clock that only moves when the client sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


Step = httpx.Response | type[Exception] | Callable[[httpx.Request], httpx.Response]


class Script:
    """A fake server: answers requests with ``steps`` in order (a response, an httpx exception
    class to raise, or a function of the request) and records every request."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, type):
            raise step("scripted failure", request=request)
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    @property
    def request_ids(self) -> list[str]:
        return [r.headers["x-request-id"] for r in self.requests]


def error(status: int, code: str, param: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"message": f"scripted {code}", "type": "t", "param": param, "code": code,
                      "request_id": "server-id"}}  # fmt: skip
    return httpx.Response(
        status, json=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def audio(pcm: bytes = b"\x01\x00\x02\x00", fmt: str = "audio/pcm") -> httpx.Response:
    headers = {"content-type": fmt, "x-sample-rate": "24000", "x-request-id": "server-id"}
    return httpx.Response(200, content=pcm, headers=headers)


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


def audio_event(seq: int, pcm: bytes) -> bytes:
    payload = {"seq": seq, "sample_rate": 24000, "format": "pcm_s16le",
               "audio": base64.b64encode(pcm).decode()}  # fmt: skip
    return sse_event("audio", payload)


def progress_event(done: int, total: int) -> bytes:
    return sse_event("progress", {"sentences_done": done, "sentences_total": total, "audio_ms": 1})


def done_event() -> bytes:
    return sse_event("done", {"request_id": "rid", "audio_duration_ms": 1, "elapsed_ms": 2,
                              "time_to_first_audio_ms": 1, "finish_reason": "stop"})  # fmt: skip


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in ``pieces``, then cut by ``fail`` (an exception class) if given."""

    def __init__(self, pieces: list[bytes], fail: type[Exception] | None = None) -> None:
        self.pieces = pieces
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.fail is not None:
            raise self.fail("connection cut")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self:
            yield piece


def sse(pieces: list[bytes], fail: type[Exception] | None = None) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Body(pieces, fail)
    )


async def call(client: Client | AsyncClient, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` (a dotted name: ``"voices.list"``) on either client: awaited for the
    async one."""
    result = operator.attrgetter(method)(client)(*args, **kwargs)
    return await result if isinstance(client, AsyncClient) else result


async def collect(
    client: Client | AsyncClient, text: str, into: list[StreamEvent] | None = None, **kw: Any
) -> list[StreamEvent]:
    """All events of ``client.stream(text)``; each is appended to ``into`` as it arrives."""
    events = [] if into is None else into
    if isinstance(client, AsyncClient):
        async for event in client.stream(text, **kw):
            events.append(event)
    else:
        for event in client.stream(text, **kw):
            events.append(event)
    return events


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
async def make_client(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[Callable[..., Client | AsyncClient]]:
    """``make_client(script, **options)``: a Client or AsyncClient on the fake server."""
    made: list[Client | AsyncClient] = []

    def make(script: Script, **options: Any) -> Client | AsyncClient:
        options = {"clock": clock, "random": lambda: 0.5, **options}
        transport = httpx.MockTransport(script)
        client: Client | AsyncClient
        if request.param == "sync":
            client = Client("http://tts.test", transport=transport, sleep=clock.sleep, **options)
        else:
            client = AsyncClient(
                "http://tts.test", transport=transport, sleep=clock.asleep, **options
            )
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


@pytest.fixture
def sync_client(live: LiveServer) -> Iterator[Client]:
    wait_idle(live)
    with Client(live.url, timeout=120) as client:
        yield client


@pytest.fixture
def asgi_app(engine: Any) -> Iterator[Any]:
    from chattts_server.server import create_app

    app = create_app(make_settings(), engine)
    yield app
    app.state.worker.shutdown()


@pytest.fixture
async def async_client(asgi_app: Any) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://tts.test", transport=httpx.ASGITransport(app=asgi_app)) as c:
        yield c
