"""The blocking client, and its voice library resource (``client.voices``)."""

from __future__ import annotations

import builtins
import os
import random as _random
import time
from collections.abc import Callable, Iterator, Mapping
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

__all__ = ["Client", "Voices"]


class Client(BaseClient):
    """A blocking client of one chattts-server, safe to share between threads.

    Keeps connections alive in a pool; close it (or use it as a context manager) when done.
    See :class:`~chattts_server.client.BaseClient` for the arguments shared with
    :class:`~chattts_server.client.AsyncClient`.

    Args:
        transport: An httpx transport to use instead of the network (tests, proxies); it
            brings its own TLS settings, so ``ca``, ``cert`` and ``key`` do not apply to it.
        sleep: How to wait between retries (tests inject a fake).

    Attributes:
        voices: The server's voice library (:class:`Voices`).
    """

    voices: Voices

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
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = httpx.Client(transport=transport, **self._http_options())
        self.voices = Voices(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    # --- calls -------------------------------------------------------------------------------

    def synthesize(self, text: str, **params: Unpack[TTSParams]) -> Audio:
        """Synthesize ``text`` into one audio file (``format``, default ``wav``).

        Returns the fallback audio (``fallback=True``) instead of raising when one is
        configured and the server cannot answer (never for a 4xx input error).

        Raises:
            ChatTTSError: see :mod:`chattts_server.client.errors`.
        """
        body = self._tts_body(text, params)
        try:
            with self._call("POST /v1/tts") as call:
                response = self._send(call, "POST", "/v1/tts", json=body)
                return self._audio(call, response)
        except ChatTTSError as exc:
            if not self._fallback_wanted(exc) or (audio := self._load_fallback(exc)) is None:
                raise
            return audio

    def stream(self, text: str, **params: Unpack[TTSParams]) -> Iterator[StreamEvent]:
        """Synthesize ``text`` as a stream of events: :class:`AudioChunk` (s16le PCM, in
        order) and :class:`Progress` as sentences finish, then one :class:`Done`.

        ``format`` is not accepted (chunks are always PCM). A failure after the first event
        raises :class:`StreamInterruptedError` (or :class:`StreamError`), never a retry.
        """
        if params.get("format") is not None:
            raise ValueError("stream() yields PCM chunks; format is not accepted")
        body = self._tts_body(text, params)
        with self._call("POST /v1/tts (stream)") as call:
            got = _Received()
            while True:
                try:
                    yield from self._stream_once(call, body, got)
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
                self._sleep(delay)

    def stream_to(
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
        raised. ``on_event`` sees every event as it arrives (to show progress, say).
        """
        if not isinstance(target, str | os.PathLike):
            return self._write_wav(target, text, on_event, params)
        path = Path(target)
        try:
            with path.open("wb") as file:
                return self._write_wav(file, text, on_event, params)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def health(self) -> Health:
        """The server's readiness (``GET /readyz``): one attempt, not counted by the breaker.

        Raises:
            TransportError: the server cannot be reached.
        """
        with self._call("GET /readyz", guarded=False, retries=False) as call:
            return self._health(call, self._send(call, "GET", "/readyz", accept=(503,)))

    # --- internals ---------------------------------------------------------------------------

    def _run(self, request: _Request[T]) -> T:
        """Send a described call (retries, breaker, deadline) and parse its answer."""
        with self._call(request.name, idempotent=request.idempotent) as call:
            response = self._send(call, request.method, request.path, json=request.json)
            return request.parse(call, response)

    def _send(
        self,
        call: _Call,
        method: str,
        path: str,
        *,
        json: Any = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Attempts until a response comes back (its body read), or giving up."""
        while True:
            try:
                return self._attempt(call, method, path, json, None, False, accept)
            except ChatTTSError as exc:
                delay = self._retry_delay(call, exc)
                if delay is None:
                    raise
            self._sleep(delay)

    def _attempt(
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
            response = self._http.send(request, stream=stream)
            if response.is_success or response.status_code in accept:
                return response
            try:
                body = response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise self._transport_error(call, exc) from exc
        raise self._status_error(call, response, body)

    def _stream_once(self, call: _Call, body: Any, got: _Received) -> Iterator[StreamEvent]:
        headers = {"Accept": "text/event-stream"}
        response = self._attempt(call, "POST", "/v1/tts?stream=true", body, headers, True, ())
        done: Done | None = None
        try:
            self._check_event_stream(call, response)
            decoder = SSEDecoder()
            try:
                for raw in response.iter_bytes():
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
            response.close()
        if done is None:
            raise self._ended_early(call, got)
        yield done

    def _write_wav(
        self,
        file: BinaryIO,
        text: str,
        on_event: Callable[[StreamEvent], object] | None,
        params: TTSParams,
    ) -> Done:
        writer = StreamWriter(file)
        event: StreamEvent | None = None
        for event in self.stream(text, **params):
            if on_event is not None:
                on_event(event)
            if isinstance(event, AudioChunk):
                writer.write(event.pcm, event.sample_rate)
        assert isinstance(event, Done)  # stream() ends with Done or raises
        writer.close(params.get("sample_rate") or SERVER_SAMPLE_RATE)
        return event

    def _load_fallback(self, exc: ChatTTSError) -> Audio | None:
        if self._fallback is None:
            url = self._fallback_url()
            try:
                if url is not None:
                    response = self._http.get(url)
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


class Voices:
    """The server's voice library: ``client.voices``.

    A saved voice sounds the same on every call, by name (``synthesize(..., voice="narrator")``).
    Calls that change the library (:meth:`create`, :meth:`update`, :meth:`delete`,
    :meth:`import_`) are retried only when the server surely did nothing (see
    :class:`~chattts_server.client.RetryPolicy`). Every call raises
    :class:`~chattts_server.client.NotFoundError` (``code="voice_not_found"``) for a name that
    does not exist, and the other errors of :mod:`chattts_server.client.errors`.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> builtins.list[Voice]:
        """The voices usable as ``voice=``: the built-in OpenAI names, then the saved voices
        (``seed:N`` works too)."""
        return self._client._run(self._client._voice_list())

    def get(self, name: str) -> Voice:
        """The voice called ``name``."""
        return self._client._run(self._client._voice_get(name))

    def create(
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
        return self._client._run(
            self._client._voice_create(
                name, seed=seed, spk_emb=spk_emb, ref_audio=ref_audio, ref_text=ref_text,
                description=description, language=language, defaults=defaults,
            )
        )  # fmt: skip

    def update(self, name: str, **changes: Unpack[VoiceChanges]) -> Voice:
        """Change ``description``, ``language`` or ``defaults``; a key left out stays as it
        is, ``None`` clears it. Returns the voice as it now is."""
        return self._client._run(self._client._voice_update(name, changes))

    def delete(self, name: str) -> None:
        """Delete a saved voice."""
        self._client._run(self._client._voice_delete(name))

    def sample(
        self,
        name: str,
        *,
        format: AudioFormat = "wav",
        text: str | None = None,
        lang: Literal["zh", "en"] | None = None,
    ) -> Audio:
        """A short preview of the voice, the same every time: ``text`` (at most 200
        characters; default a greeting in ``lang``, else in the voice's language)."""
        return self._client._run(self._client._voice_sample(name, format, text, lang))

    def export(self) -> dict[str, Any]:
        """Every saved voice as one JSON document, for :meth:`import_` on any server."""
        return self._client._run(self._client._voice_export())

    def import_(self, document: Mapping[str, Any], overwrite: bool = False) -> ImportResult:
        """Import an :meth:`export` document, all or nothing. Names that exist are skipped,
        or replaced with ``overwrite``.

        Raises:
            BadRequestError: the document is not valid; ``param`` says where.
        """
        return self._client._run(self._client._voice_import(document, overwrite))
