"""Serving logic for both speech endpoints: voices, request building, and the three ways a
response leaves (whole file, chunked audio, Server-Sent Events)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import string
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..audio import AudioFormat, Encoder, check_sample_rate, create_encoder, negotiate
from ..engine import Pauses, SynthesisCancelledError, SynthesisRequest, limits
from ..engine.voices import check_one_source
from .errors import BadRequestError, translate
from .observe import Metrics, RequestRecord
from .protocol import (
    KNOWN_EXTENSIONS,
    AudioEvent,
    DoneEvent,
    Extensions,
    ProgressEvent,
    SpeechAudioDelta,
    SpeechAudioDone,
    SpeechRequest,
    TTSRequest,
    Usage,
    decode_b64,
)
from .voices import VoiceChoice, VoiceLibrary
from .worker import Job, SynthesisWorker

log = logging.getLogger(__name__)
MAX_IGNORED_LISTED = 32
_PRINTABLE = "".join(c for c in string.printable if c not in "%\t\n\r\x0b\x0c")


@dataclass(frozen=True)
class Plan:
    """A validated request: what to synthesize and how to send it."""

    request: SynthesisRequest
    format: AudioFormat
    content_type: str
    sample_rate: int
    ignored: tuple[str, ...] = ()
    warning: str | None = None


class SpeechService:
    def __init__(
        self,
        worker: SynthesisWorker,
        library: VoiceLibrary,
        metrics: Metrics,
        *,
        keepalive_s: float,
        sample_rate: int,
    ) -> None:
        self.worker = worker
        self.library = library
        self.metrics = metrics
        self.keepalive_s = keepalive_s
        self.engine_rate = sample_rate

    # --- request building --------------------------------------------------------------------

    async def plan_tts(self, body: TTSRequest, accept: str | None, sse: bool = False) -> Plan:
        """``sse``: the audio goes out as PCM events, so ``format`` is ignored (and listed)."""
        _check_voice_sources(body)
        name = body.voice_name
        choice = (
            VoiceChoice() if name is None else await self.library.resolve(name, _voice_param(body))
        )
        params = _with_defaults(body, choice.defaults)
        ref_audio = decode_b64(body.ref_audio, "ref_audio") if body.ref_audio is not None else None
        ext, ignored = self._extensions(body.extensions)
        request = SynthesisRequest(
            text=body.text,
            seed=choice.seed if name is not None else body.seed,
            spk_emb=choice.spk_emb or body.spk_emb,
            ref_audio=ref_audio,
            ref_tokens=choice.ref_tokens,
            ref_text=body.ref_text if ref_audio is not None else choice.ref_text,
            lang=body.lang,
            refine_prompt=body.refine_prompt,
            pauses=Pauses(body.pauses.comma, body.pauses.period),
            manual_seed=body.manual_seed,
            **params,
            **ext,
        )
        fmt = body.format
        if sse:
            ignored += ("format",) if fmt not in (None, "pcm") else ()
            fmt, accept = "pcm", None
        return self._plan(request, fmt, accept, body.sample_rate, ignored, choice.warning)

    async def plan_speech(self, body: SpeechRequest) -> Plan:
        choice = await self.library.resolve(body.voice)
        params = _with_defaults(body, choice.defaults)
        params["speed"] = min(max(params["speed"], limits.SPEED[0]), limits.SPEED[1])
        request = SynthesisRequest(
            text=body.input,
            seed=choice.seed,
            spk_emb=choice.spk_emb,
            ref_tokens=choice.ref_tokens,
            ref_text=choice.ref_text,
            **params,
        )
        return self._plan(request, body.response_format, None, None, (), choice.warning)

    def plan_direct(self, request: SynthesisRequest, fmt: str) -> Plan:
        return self._plan(request, fmt, None, None, (), None)

    def _plan(
        self,
        request: SynthesisRequest,
        fmt: str | None,
        accept: str | None,
        rate: int | None,
        ignored: tuple[str, ...],
        warning: str | None,
    ) -> Plan:
        neg = negotiate(fmt, accept)
        sample_rate = rate or neg.sample_rate or self.engine_rate
        check_sample_rate(neg.format, sample_rate)
        return Plan(request, neg.format, neg.content_type, sample_rate, ignored, warning)

    @staticmethod
    def _extensions(ext: Extensions) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The understood keys (typed by the wire model), and the ignored ones."""
        known = {k: getattr(ext, k) for k in KNOWN_EXTENSIONS if getattr(ext, k) is not None}
        return known, tuple(sorted(f"extensions.{k}" for k in ext.model_extra or {}))

    # --- responses ---------------------------------------------------------------------------

    async def full(
        self, request: Request, plan: Plan, rec: RequestRecord, timeout: float
    ) -> Response:
        """The whole file, with an exact Content-Length."""
        job = await self.worker.admit(plan.request, timeout)
        rec.on_end(job.cancel)
        watcher = asyncio.create_task(cancel_on_disconnect(request, job))
        pcm: list[np.ndarray] = []
        try:
            async for chunk in job:
                rec.audio_started()
                pcm.append(chunk.pcm)
        finally:
            watcher.cancel()
        audio = np.concatenate(pcm) if pcm else np.zeros(0, np.float32)
        rec.audio_seconds = audio.size / self.engine_rate
        enc = self._encoder(plan, total=audio.size)
        data = enc.encode(audio) + enc.flush()
        ms = round(audio.size * 1000 / self.engine_rate)
        headers = {**self._headers(plan), "X-Audio-Duration-Ms": str(ms)}
        return Response(data, media_type=plan.content_type, headers=headers)

    async def chunked(self, job: Job, plan: Plan, rec: RequestRecord) -> StreamingResponse:
        """Audio bytes in the negotiated format as each chunk is ready. The status is sent
        with the first audio, so a failure before it (deadline, engine error) is a real HTTP
        error; one after it can only cut the stream short (the body ends incomplete)."""
        enc = self._encoder(plan)
        events = self._drive(job, rec, enc.encode)
        try:
            first: bytes = b""
            while not first:
                first = await anext(events)
        except StopAsyncIteration:
            pass
        except BaseException:
            await events.aclose()
            raise

        async def body() -> AsyncIterator[bytes]:
            async with aclosing(events):
                if first:
                    yield first
                    async for data in events:
                        if data:
                            yield data
            tail = enc.flush()
            if tail:
                yield tail

        return ClosingStreamingResponse(
            body(), rec, media_type=plan.content_type, headers=self._headers(plan)
        )

    async def sse_native(self, job: Job, plan: Plan, rec: RequestRecord) -> StreamingResponse:
        """``event: audio`` (PCM s16le, base64) / ``progress`` / ``done`` | ``error``."""
        pcm = create_encoder("pcm", plan.sample_rate, self.engine_rate)
        seq = 0

        def progress() -> str:
            stats = job.stats
            event = ProgressEvent(
                sentences_done=stats.segments_done,
                sentences_total=stats.segments,
                audio_ms=round(rec.audio_seconds * 1000),
            )
            return _sse(event.model_dump_json(), "progress")

        def on_chunk(chunk: np.ndarray) -> str:
            nonlocal seq
            event = AudioEvent(
                seq=seq, sample_rate=plan.sample_rate, audio=_b64e(pcm.encode(chunk))
            )
            seq += 1
            return _sse(event.model_dump_json(), "audio") + progress()

        def done() -> str:
            event = DoneEvent(
                request_id=rec.request_id,
                audio_duration_ms=round(rec.audio_seconds * 1000),
                elapsed_ms=rec.elapsed_ms,
                time_to_first_audio_ms=rec.ttfa_ms,
                finish_reason=job.stats.finish_reason,
            )
            return progress() + _sse(event.model_dump_json(), "done")

        return self._sse_response(job, plan, rec, on_chunk, done, error_event="error")

    async def sse_openai(self, job: Job, plan: Plan, rec: RequestRecord) -> StreamingResponse:
        """OpenAI's ``speech.audio.delta`` / ``speech.audio.done`` events (data-only)."""
        enc = self._encoder(plan)

        def on_chunk(chunk: np.ndarray) -> str:
            data = enc.encode(chunk)
            return _sse(SpeechAudioDelta(audio=_b64e(data)).model_dump_json()) if data else ""

        def done() -> str:
            tail = enc.flush()
            out = _sse(SpeechAudioDelta(audio=_b64e(tail)).model_dump_json()) if tail else ""
            text_tokens = len(rec.text)
            audio_tokens = sum(job.stats.tokens)
            usage = Usage(
                input_tokens=text_tokens,
                output_tokens=audio_tokens,
                total_tokens=text_tokens + audio_tokens,
            )
            return out + _sse(SpeechAudioDone(usage=usage).model_dump_json())

        return self._sse_response(job, plan, rec, on_chunk, done, error_event=None)

    def _sse_response(
        self,
        job: Job,
        plan: Plan,
        rec: RequestRecord,
        on_chunk: Callable[[np.ndarray], str],
        done: Callable[[], str],
        error_event: str | None,
    ) -> StreamingResponse:
        async def body() -> AsyncIterator[str]:
            try:
                async with aclosing(self._drive(job, rec, on_chunk, True)) as events:
                    async for event in events:
                        if event:
                            yield event
                yield done()
            except _StreamFailed as failed:
                payload = json.dumps(failed.api.body(rec.request_id))
                yield _sse(payload, error_event) if error_event else _sse(payload)

        headers = {**self._headers(plan), "Cache-Control": "no-cache",
                   "X-Accel-Buffering": "no"}  # fmt: skip
        return ClosingStreamingResponse(
            body(), rec, media_type="text/event-stream", headers=headers
        )

    async def _drive(
        self,
        job: Job,
        rec: RequestRecord,
        on_chunk: Callable[[np.ndarray], Any],
        keepalive: bool = False,
    ) -> AsyncGenerator[Any, None]:
        """Pull chunks from ``job`` into the record; tell it how the stream ended."""
        it = aiter(job)
        nxt: asyncio.Future[Any] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(anext(it))
                if keepalive:
                    while not (await asyncio.wait({nxt}, timeout=self.keepalive_s))[0]:
                        yield ": keep-alive\n\n"
                try:
                    chunk = await nxt
                except StopAsyncIteration:
                    break
                rec.audio_started()
                rec.audio_seconds += chunk.pcm.size / self.engine_rate
                yield on_chunk(chunk.pcm)
        except SynthesisCancelledError:
            rec.cancelled()
        except (asyncio.CancelledError, GeneratorExit):
            rec.cancelled()  # the client went away
            raise
        except Exception as exc:
            rec.failed(exc)
            log.error("synthesis failed mid-stream: %s", exc)
            if keepalive:
                raise _StreamFailed(translate(exc)) from exc
            raise
        finally:
            if nxt is not None and not nxt.done():
                nxt.cancel()

    def _encoder(self, plan: Plan, total: int | None = None) -> Encoder:
        return create_encoder(plan.format, plan.sample_rate, self.engine_rate, total)

    @staticmethod
    def _headers(plan: Plan) -> dict[str, str]:
        headers = {"X-Sample-Rate": str(plan.sample_rate)}
        if plan.ignored:  # names are the client's (extension keys): escaped, and not too many
            names = [quote(n, safe="._-") for n in plan.ignored[:MAX_IGNORED_LISTED]]
            more = len(plan.ignored) - len(names)
            headers["X-Ignored-Fields"] = ",".join(names + ([f"+{more} more"] if more else []))
        if plan.warning:
            headers["X-Voice-Warning"] = quote(plan.warning, safe=_PRINTABLE)
        return headers


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator however the response ends — also when a send fails or times
    out, or before the body ever started — and then ends the request's record (which stops
    its synthesis and writes its log line) at once, not at GC time."""

    def __init__(self, content: AsyncIterator[Any], rec: RequestRecord, **kw: Any) -> None:
        self._completed = False

        async def body() -> AsyncIterator[Any]:
            async for piece in content:
                yield piece
            self._completed = True

        self._content = content
        self._end = rec.hand_over()
        super().__init__(body(), **kw)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            # the status line is gone: the only way left to say "failed" is to end the body
            # incomplete (the request's log line says why)
            log.warning("stream cut short after it started: %s", exc)
        finally:
            for it in (self.body_iterator, self._content):
                close = getattr(it, "aclose", None)
                if close is not None:
                    await close()
            self._end(self._completed)


class _StreamFailed(Exception):
    def __init__(self, api: Any) -> None:
        self.api = api


async def cancel_on_disconnect(request: Request, job: Job, every: float = 0.2) -> None:
    while True:
        await asyncio.sleep(every)
        if await request.is_disconnected():
            job.cancel()
            return


def _sse(data: str, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_voice_sources(body: TTSRequest) -> None:
    """One voice source at most (``voice`` and ``voice_id`` may both name the same voice);
    ``ref_text`` only with ``ref_audio`` (the engine asks for the transcript of a clip)."""
    if body.voice is not None and body.voice_id is not None and body.voice != body.voice_id:
        raise BadRequestError(
            "voice and voice_id name different voices; give one",
            code="conflicting_voice",
            param="voice_id",
        )
    voice = _voice_param(body) if body.voice_name is not None else None
    sources = (voice, "seed", "spk_emb", "ref_audio")
    check_one_source([n for n in sources if n and getattr(body, n) is not None])
    if body.ref_text is not None and body.ref_audio is None:
        raise BadRequestError("ref_text needs ref_audio", code="missing_field", param="ref_audio")


def _voice_param(body: TTSRequest) -> str:
    return "voice" if body.voice is not None else "voice_id"


def _with_defaults(body: TTSRequest | SpeechRequest, defaults: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters: what the request set, else the voice's defaults, else ours."""
    out: dict[str, Any] = {}
    for name in ("speed", "temperature", "top_p", "top_k", "refine_text"):
        if name in body.model_fields_set or name not in defaults:
            if hasattr(body, name):
                out[name] = getattr(body, name)
        else:
            out[name] = defaults[name]
    out.setdefault("speed", 1.0)
    return out
