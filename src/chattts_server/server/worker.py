"""The engine off the event loop: ``concurrency`` worker threads, a bounded queue in front.

``SynthesisWorker.admit`` admits a request (or raises :class:`OverloadedError` at once when
running + queued requests would exceed ``concurrency + max_queue``), validates it off the loop,
and returns a :class:`Job`: an async iterator of the engine's chunks, fed by a worker thread
through a small bounded buffer. Up to ``concurrency`` syntheses run at once; the engine batches
their GPT steps (see :mod:`chattts_server.engine.batching`). ``Job.cancel()`` stops the
synthesis within one GPT step and frees its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ..engine import AudioChunk, Engine, Synthesis, SynthesisRequest
from .errors import DeadlineExceededError, NotReadyError, OverloadedError
from .observe import Metrics

log = logging.getLogger(__name__)


class Job:
    """One admitted synthesis; iterate it on the event loop for :class:`AudioChunk`.

    Chunks come through a bounded buffer; the end (or the error) is the worker's future
    finishing, so it always arrives, even when the buffer was drained by ``cancel()``."""

    def __init__(self, synthesis: Synthesis, buffer: int) -> None:
        self.synthesis = synthesis
        self.queue: asyncio.Queue[AudioChunk] = asyncio.Queue(maxsize=buffer)
        self.cancelled = False
        self.expired = False
        self.error: BaseException | None = None
        self.future: asyncio.Future[None] | None = None

    @property
    def stats(self) -> Any:
        return self.synthesis.stats

    def cancel(self) -> None:
        """Stop the synthesis (idempotent) and unblock the worker if it waits on the buffer."""
        self.cancelled = True
        self.synthesis.cancel()
        while not self.queue.empty():
            self.queue.get_nowait()

    def expire(self) -> None:
        """The request's deadline passed: stop, and report it as such."""
        self.expired = True
        self.cancel()

    async def __aiter__(self) -> AsyncIterator[AudioChunk]:
        assert self.future is not None
        while True:
            if self.queue.empty() and self.future.done():
                if self.expired:
                    raise DeadlineExceededError("the request deadline passed; synthesis stopped")
                if self.error is not None:
                    raise self.error
                return
            get = asyncio.ensure_future(self.queue.get())
            waiting: set[asyncio.Future[Any]] = {get, self.future}
            try:
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not get.done():
                    get.cancel()
            if get.done() and not get.cancelled():
                yield get.result()


class SynthesisWorker:
    """Runs up to ``concurrency`` engine syntheses at once, each on its own thread."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        max_queue: int,
        send_timeout: float,
        concurrency: int = 1,
        buffer_chunks: int = 4,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.concurrency = max(1, concurrency)
        self.capacity = self.concurrency + max_queue
        self.send_timeout = send_timeout
        self.buffer_chunks = buffer_chunks
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.concurrency, thread_name_prefix="engine"
        )
        self._admitted = 0
        self._running = 0
        self._running_lock = threading.Lock()
        self._recent_seconds = 5.0  # moving average of job durations, for Retry-After

    @property
    def depth(self) -> int:
        """Requests admitted and not finished (running + waiting)."""
        return self._admitted

    def retry_after(self) -> int:
        return max(1, math.ceil(self._recent_seconds * max(1, self._admitted) / self.capacity))

    async def admit(self, request: SynthesisRequest, timeout: float) -> Job:
        """Admit ``request``; it is stopped (504) when ``timeout`` seconds pass."""
        if not self.engine.ready:
            raise NotReadyError("the model is still loading", headers={"Retry-After": "5"})
        if self._admitted >= self.capacity:
            raise OverloadedError(
                f"server busy: {self._admitted} requests in progress or queued",
                headers={"Retry-After": str(self.retry_after())},
            )
        self._admitted += 1
        self._update_gauges()
        try:  # validation may decode a reference clip: keep it off the loop
            synthesis = await asyncio.to_thread(self.engine.synthesize, request)
        except BaseException:
            self._admitted -= 1
            self._update_gauges()
            raise
        job = Job(synthesis, self.buffer_chunks)
        loop = asyncio.get_running_loop()
        job.future = loop.run_in_executor(self._executor, self._pump, job, loop)
        deadline = loop.call_later(timeout, job.expire)

        def done(_: object) -> None:
            deadline.cancel()
            self._release()

        job.future.add_done_callback(done)
        return job

    def _release(self) -> None:
        self._admitted -= 1
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.in_flight.set(self._running)
        self.metrics.queue_depth.set(max(0, self._admitted - self._running))

    def _pump(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: move chunks from the engine to the job's buffer."""
        started = time.perf_counter()
        with self._running_lock:
            self._running += 1
        loop.call_soon_threadsafe(self._update_gauges)
        try:
            for chunk in job.synthesis:
                if job.cancelled or not self._put(job, loop, chunk):
                    job.synthesis.cancel()
        except Exception as exc:  # SynthesisCancelledError included: the consumer sees it
            job.error = exc
        finally:
            job.synthesis.close()
            with self._running_lock:
                self._running -= 1
            took = time.perf_counter() - started
            self._recent_seconds = 0.8 * self._recent_seconds + 0.2 * took

    def _put(self, job: Job, loop: asyncio.AbstractEventLoop, item: AudioChunk) -> bool:
        """Hand ``item`` to the loop; False when the consumer left or stopped reading."""
        if job.cancelled:
            return False
        fut = asyncio.run_coroutine_threadsafe(job.queue.put(item), loop)
        try:
            fut.result(timeout=self.send_timeout)
            return True
        except (concurrent.futures.TimeoutError, RuntimeError):
            fut.cancel()
            log.warning("client stopped reading for %.0fs: cancelling", self.send_timeout)
            job.cancelled = True
            return False

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
