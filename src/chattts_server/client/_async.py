"""The asyncio client: the same calls as :class:`~chattts_server.client.Client`, awaited, and
its voice library resource (``client.voices``)."""

from __future__ import annotations

import asyncio
import builtins
import os
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal, Unpack

import httpx

from ._base import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    SERVER_SAMPLE_RATE,
    BaseClient,
    RetryPolicy,
    T,
    Timeout,
    _Call,
    _Received,
    _Request,
)
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
    """An asyncio client of one chattts-server; the arguments are :class:`Client`'s, with an
    async transport and an async ``sleep``. Close it with ``aclose()`` or ``async with``.

    Break out of :meth:`stream` early inside ``contextlib.aclosing(...)`` to release its
    connection at once rather than when the generator is collected.

    Attributes:
        voices: The server's voice library (:class:`AsyncVoices`).
    """

    voices: AsyncVoices

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
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
        """See :meth:`Client.synthesize`."""
        body = self._tts_body(text, params)
        try:
            with self._call("POST /v1/tts") as call:
                response = await self._send(call, "POST", "/v1/tts", json=body)
                return self._audio(call, response)
        except ChatTTSError as exc:
            if not self._fallback_wanted(exc) or (audio := await self._load_fallback(exc)) is None:
                raise
            return audio

    async def stream(self, text: str, **params: Unpack[TTSParams]) -> AsyncIterator[StreamEvent]:
        """See :meth:`Client.stream`."""
        if params.get("format") is not None:
            raise ValueError("stream() yields PCM chunks; format is not accepted")
        body = self._tts_body(text, params)
        with self._call("POST /v1/tts (stream)") as call:
            got = _Received()
            while True:
                try:
                    async for event in self._stream_once(call, body, got):
                        yield event
                    return
                except ChatTTSError as exc:
                    if got.events:
                        err = self._interrupted(call, exc, got)
                        if err is exc:
                            raise
                        raise err from exc
                    delay = self._retry_delay(call, exc)
                    if delay is None:
                        raise
                await self._sleep(delay)

    async def stream_to(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        text: str,
        *,
        on_event: Callable[[StreamEvent], object] | None = None,
        **params: Unpack[TTSParams],
    ) -> Done:
        """See :meth:`Client.stream_to` (file writes are small and made in the event loop)."""
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
        """See :meth:`Client.health`."""
        with self._call("GET /readyz", guarded=False, retries=False) as call:
            return self._health(call, await self._send(call, "GET", "/readyz", accept=(503,)))

    # --- internals ---------------------------------------------------------------------------

    async def _run(self, request: _Request[T]) -> T:
        with self._call(request.name, idempotent=request.idempotent) as call:
            response = await self._send(call, request.method, request.path, json=request.json)
            return request.parse(call, response)

    async def _send(
        self,
        call: _Call,
        method: str,
        path: str,
        *,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        while True:
            try:
                return await self._attempt(call, method, path, json, None, False, accept)
            except ChatTTSError as exc:
                delay = self._retry_delay(call, exc)
                if delay is None:
                    raise
            await self._sleep(delay)

    async def _attempt(
        self,
        call: _Call,
        method: str,
        path: str,
        json: Any,
        headers: Mapping[str, str] | None,
        stream: bool,
        accept: tuple[int, ...],
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            path,
            json=json,
            headers=self._headers_for(call, headers),
            timeout=self._timeout_for(call),
        )
        try:
            response = await self._http.send(request, stream=stream)
            if response.is_success or response.status_code in accept:
                return response
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise self._transport_error(call, exc) from exc
        raise self._status_error(call, response, body)

    async def _stream_once(
        self, call: _Call, body: Any, got: _Received
    ) -> AsyncIterator[StreamEvent]:
        headers = {"Accept": "text/event-stream"}
        response = await self._attempt(call, "POST", "/v1/tts?stream=true", body, headers, True, ())
        done: Done | None = None
        try:
            self._check_event_stream(call, response)
            decoder = SSEDecoder()
            try:
                async for raw in response.aiter_bytes():
                    for sse in decoder.feed(raw):
                        event = self._stream_event(call, sse, got)
                        if isinstance(event, Done):
                            done = event  # handed over once the body is read to its end
                        elif event is not None:
                            got.add(event)
                            yield event
                    self._check_deadline(call)
            except httpx.TransportError as exc:
                raise self._transport_error(call, exc) from exc
        finally:
            await response.aclose()
        if done is None:
            raise self._ended_early(call, got)
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

    async def _load_fallback(self, exc: ChatTTSError) -> Audio | None:
        if self._fallback is None:
            url = self._fallback_url()
            try:
                if url is not None:
                    response = await self._http.get(url)
                    response.raise_for_status()
                    self._set_fallback(response.content, url, response.headers.get("content-type"))
                else:
                    assert self._fallback_source is not None
                    source = Path(self._fallback_source)
                    self._set_fallback(source.read_bytes(), source.name, None)
            except (OSError, httpx.HTTPError) as load_error:
                self._fallback_failed(exc, load_error)
                return None
        return self._fallback_ready(exc)


class AsyncVoices:
    """The server's voice library: ``AsyncClient.voices``; each call is
    :class:`~chattts_server.client.Voices`' own, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[Voice]:
        """See :meth:`Voices.list`."""
        return await self._client._run(self._client._voice_list())

    async def get(self, name: str) -> Voice:
        """See :meth:`Voices.get`."""
        return await self._client._run(self._client._voice_get(name))

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
        """See :meth:`Voices.create`."""
        return await self._client._run(
            self._client._voice_create(
                name, seed=seed, spk_emb=spk_emb, ref_audio=ref_audio, ref_text=ref_text,
                description=description, language=language, defaults=defaults,
            )
        )  # fmt: skip

    async def update(self, name: str, **changes: Unpack[VoiceChanges]) -> Voice:
        """See :meth:`Voices.update`."""
        return await self._client._run(self._client._voice_update(name, changes))

    async def delete(self, name: str) -> None:
        """See :meth:`Voices.delete`."""
        await self._client._run(self._client._voice_delete(name))

    async def sample(
        self,
        name: str,
        *,
        format: AudioFormat = "wav",
        text: str | None = None,
        lang: Literal["zh", "en"] | None = None,
    ) -> Audio:
        """See :meth:`Voices.sample`."""
        return await self._client._run(self._client._voice_sample(name, format, text, lang))

    async def export(self) -> dict[str, Any]:
        """See :meth:`Voices.export`."""
        return await self._client._run(self._client._voice_export())

    async def import_(self, document: Mapping[str, Any], overwrite: bool = False) -> ImportResult:
        """See :meth:`Voices.import_`."""
        return await self._client._run(self._client._voice_import(document, overwrite))
