# The source of _sync.py: after a change here, run `python tools/unasync.py`.
"""The asyncio client, and its voice library resource (``client.voices``): the I/O of each
call and nothing else; every decision is :class:`BaseClient`'s and its helpers'."""

from __future__ import annotations

import asyncio
import builtins
import os
import random as _random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, Unpack

import httpx

from . import _parse as parse
from . import _requests as requests
from ._base import DEFAULT_URL, SERVER_SAMPLE_RATE, BaseClient
from ._policy import DEFAULT_TIMEOUT, Call, RetryPolicy, Timeout
from ._requests import Request, T
from .errors import ChatTTSError
from .models import (
    Audio,
    AudioChunk,
    AudioFormat,
    Done,
    Health,
    ImportResult,
    StreamEvent,
    TTSParams,
    Voice,
    VoiceChanges,
    VoiceDefaults,
)
from .sse import SSEDecoder
from .wav import StreamWriter

__all__ = ["AsyncClient", "AsyncVoices"]


class AsyncClient(BaseClient):
    """An asyncio client of one chattts-server.

    Or of several: ``base_url=[primary, secondary, …]`` sends each call to the first server
    that is up, and moves a failed call on to the next.

    Keeps connections alive in a pool; close it with ``aclose()`` (or use it as a context
    manager: ``async with``) when done. See :class:`~chattts_server.client.BaseClient` for
    the arguments both clients share. Break out of :meth:`stream` early inside
    ``contextlib.aclosing(...)`` to release its connection at once rather than when the
    generator is collected.

    Args:
        transport: An httpx transport to use instead of the network (tests, proxies); it
            brings its own TLS settings, so ``ca``, ``cert`` and ``key`` do not apply to it.
        sleep: How to wait between retries (tests inject a fake).

    Attributes:
        voices: The server's voice library (:class:`AsyncVoices`).
    """

    voices: AsyncVoices

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_URL,
        *,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        retries: int | RetryPolicy = 2,
        breaker_threshold: int | None = 5,
        breaker_cooldown: float = 30.0,
        fallback: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        api_key: str | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            retries=retries,
            breaker_threshold=breaker_threshold,
            breaker_cooldown=breaker_cooldown,
            fallback=fallback,
            headers=headers,
            api_key=api_key,
            ca=ca,
            cert=cert,
            key=key,
            clock=clock,
            random=random,
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())
        self.voices = AsyncVoices(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    # --- calls -------------------------------------------------------------------------------

    async def synthesize(self, text: str, **params: Unpack[TTSParams]) -> Audio:
        """Synthesize ``text`` into one audio file (``format``, default ``wav``).

        Returns the fallback audio (``fallback=True``) instead of raising when one is
        configured and the server cannot answer (never for a 4xx input error).

        Raises:
            ChatTTSError: see :mod:`chattts_server.client.errors`.
        """
        request = requests.synthesize(text, params)
        try:
            return await self._run(request)
        except ChatTTSError as exc:
            if (audio := await self._fallback_for(exc)) is None:
                raise
            return audio

    async def stream(self, text: str, **params: Unpack[TTSParams]) -> AsyncIterator[StreamEvent]:
        """Synthesize ``text`` as a stream of events: :class:`AudioChunk` (s16le PCM, in
        order) and :class:`Progress` as sentences finish, then one :class:`Done`.

        ``format`` is not accepted (chunks are always PCM). A failure after the first event
        raises :class:`StreamInterruptedError` (or :class:`StreamError`), never a retry.
        """
        request = requests.stream(text, params)
        with self._call(request) as call:
            got = parse.Received()
            while True:
                try:
                    async with aclosing(self._stream_once(call, request, got)) as events:
                        async for event in events:
                            yield event
                    return
                except ChatTTSError as exc:
                    if got.events:
                        err = parse.interrupted(call, exc, got)
                        if err is exc:
                            raise
                        raise err from exc
                    delay = self._retry_delay(call, exc)
                    if delay is None:
                        raise
                if delay:  # 0: failing over to another endpoint, at once
                    await self._sleep(delay)

    async def stream_to(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        text: str,
        *,
        on_event: Callable[[StreamEvent], object] | None = None,
        **params: Unpack[TTSParams],
    ) -> Done:
        """Stream ``text`` into a 16-bit WAV file while it is synthesized, holding no more
        than one chunk in memory; returns the :class:`Done` event.

        ``target`` is a path or a binary file. The header is written first with unknown
        sizes; a seekable file gets the exact sizes at the end. If the stream fails, a file
        created from a path is removed (a file object is left as written) and the error
        raised. ``on_event`` sees every event as it arrives (to show progress, say). File
        writes are small, and made in the calling thread.
        """
        if not isinstance(target, str | os.PathLike):
            return await self._write_wav(target, text, on_event, params)
        path = Path(target)
        try:
            with path.open("wb") as file:
                return await self._write_wav(file, text, on_event, params)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    async def health(self) -> Health:
        """The server's readiness (``GET /readyz``): one attempt, not counted by the breaker.
        With several endpoints: of the first, in order, that answers (``Health.endpoint``);
        breakers are not asked.

        Raises:
            TransportError: no server can be reached.
        """
        return await self._run(requests.health())

    # --- internals ---------------------------------------------------------------------------

    async def _run(self, request: Request[T]) -> T:
        """Send a described call (retries, breaker, deadline) and parse its answer."""
        with self._call(request) as call:
            return request.parse(call, await self._send(call, request))

    async def _send(self, call: Call, request: Request[Any]) -> httpx.Response:
        """Attempts until a response comes back (its body read), or giving up."""
        while True:
            try:
                return await self._attempt(call, request)
            except ChatTTSError as exc:
                delay = self._retry_delay(call, exc)
                if delay is None:
                    raise
            if delay:  # 0: failing over to another endpoint, at once
                await self._sleep(delay)

    async def _attempt(self, call: Call, request: Request[Any]) -> httpx.Response:
        """One attempt, on the endpoint of the call's route: the response of a success (or an
        accepted status), else the error."""
        timeout = self._timeout_for(call)
        sent = self._http.build_request(
            request.method,
            self._url(call, request.path),
            json=request.json,
            headers=request.headers(call, self._auth),
            timeout=timeout,
        )
        try:
            response = await self._http.send(sent, stream=request.stream)
            if response.is_success or response.status_code in request.accept:
                return response
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise parse.transport_error(call, exc) from exc
        raise parse.status_error(call, response, body)

    async def _stream_once(
        self,
        call: Call,
        request: Request[None],
        got: parse.Received,
    ) -> AsyncGenerator[StreamEvent, None]:
        """One attempt at a stream: its events, ``Done`` last once the body has ended."""
        response = await self._attempt(call, request)
        done: Done | None = None
        try:
            request.parse(call, response)
            decoder = SSEDecoder()
            try:
                async for raw in response.aiter_bytes():
                    for sse in decoder.feed(raw):
                        event = parse.stream_event(call, sse, got)
                        if isinstance(event, Done):
                            done = event  # handed over once the body is read to its end
                        elif event is not None:
                            got.add(event)
                            yield event
                    self._check_deadline(call)
            except httpx.TransportError as exc:
                raise parse.transport_error(call, exc) from exc
        finally:
            await response.aclose()
        if done is None:
            raise parse.ended_early(call, got)
        yield done

    async def _write_wav(
        self,
        file: BinaryIO,
        text: str,
        on_event: Callable[[StreamEvent], object] | None,
        params: TTSParams,
    ) -> Done:
        writer = StreamWriter(file)
        event: StreamEvent | None = None
        async for event in self.stream(text, **params):
            if on_event is not None:
                on_event(event)
            if isinstance(event, AudioChunk):
                writer.write(event.pcm, event.sample_rate)
        assert isinstance(event, Done)  # stream() ends with Done or raises
        writer.close(params.get("sample_rate") or SERVER_SAMPLE_RATE)
        return event

    async def _fallback_for(self, exc: ChatTTSError) -> Audio | None:
        """The fallback audio to return instead of raising ``exc``; ``None`` when there is
        none for it, or it cannot be loaded."""
        fallback = self._fallback
        if fallback is None or not fallback.wanted(exc):
            return None
        if fallback.audio is None:
            try:
                if fallback.url is None:
                    fallback.read_file()
                else:
                    response = await self._http.get(fallback.url)
                    response.raise_for_status()
                    fallback.fetched(response.content, response.headers.get("content-type"))
            except (OSError, httpx.HTTPError) as load_error:
                fallback.failed(exc, load_error)
                return None
        return fallback.served(exc)


class AsyncVoices:
    """The server's voice library: ``client.voices``.

    A saved voice sounds the same on every call, by name (``synthesize(..., voice="narrator")``).
    Calls that change the library (:meth:`create`, :meth:`update`, :meth:`delete`,
    :meth:`import_`) are retried only when the server surely did nothing (see
    :class:`~chattts_server.client.RetryPolicy`). Every call raises
    :class:`~chattts_server.client.NotFoundError` (``code="voice_not_found"``) for a name that
    does not exist, and the other errors of :mod:`chattts_server.client.errors`.
    """

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[Voice]:
        """The voices usable as ``voice=``: the built-in OpenAI names, then the saved voices
        (``seed:N`` works too)."""
        return await self._client._run(requests.voice_list())

    async def get(self, name: str) -> Voice:
        """The voice called ``name``."""
        return await self._client._run(requests.voice_get(name))

    async def create(
        self,
        name: str,
        *,
        seed: int | None = None,
        spk_emb: str | None = None,
        ref_audio: bytes | None = None,
        ref_text: str | None = None,
        description: str | None = None,
        language: Literal["zh", "en"] | None = None,
        defaults: VoiceDefaults | None = None,
    ) -> Voice:
        """Save a voice made from exactly one of ``seed``, ``spk_emb`` (a speaker string) or
        ``ref_audio`` (a WAV, FLAC or Ogg clip's bytes) with its transcript ``ref_text``.

        Raises:
            ConflictError: the name is taken (``code="voice_exists"``).
            BadRequestError: no source or two, a bad name or clip; ``param`` names the field.
        """
        return await self._client._run(
            requests.voice_create(
                name, seed=seed, spk_emb=spk_emb, ref_audio=ref_audio, ref_text=ref_text,
                description=description, language=language, defaults=defaults,
            )
        )  # fmt: skip

    async def update(self, name: str, **changes: Unpack[VoiceChanges]) -> Voice:
        """Change ``description``, ``language`` or ``defaults``; a key left out stays as it
        is, ``None`` clears it. Returns the voice as it now is."""
        return await self._client._run(requests.voice_update(name, changes))

    async def delete(self, name: str) -> None:
        """Delete a saved voice."""
        await self._client._run(requests.voice_delete(name))

    async def sample(
        self,
        name: str,
        *,
        format: AudioFormat = "wav",
        text: str | None = None,
        lang: Literal["zh", "en"] | None = None,
    ) -> Audio:
        """A short preview of the voice, the same every time: ``text`` (at most 200
        characters; default a greeting in ``lang``, else in the voice's language)."""
        return await self._client._run(requests.voice_sample(name, format, text, lang))

    async def export(self) -> dict[str, Any]:
        """Every saved voice as one JSON document, for :meth:`import_` on any server."""
        return await self._client._run(requests.voice_export())

    async def import_(self, document: Mapping[str, Any], overwrite: bool = False) -> ImportResult:
        """Import an :meth:`export` document, all or nothing. Names that exist are skipped,
        or replaced with ``overwrite``.

        Raises:
            BadRequestError: the document is not valid; ``param`` says where.
        """
        return await self._client._run(requests.voice_import(document, overwrite))
