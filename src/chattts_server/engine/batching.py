"""Continuous batching: concurrent requests share each GPT step.

On CPU a GPT step costs what it takes to read the weights (~755 MB for the full model), so
running four requests' next tokens through one step costs little more than one. A single
:class:`Batcher` thread owns the GPT. Each text segment to speak becomes a :class:`Generation`:
its prompt is prefilled alone, then it joins the running batch; every step feeds each active
generation's last token through the GPT once, samples every row with that row's own params
and seed (ChatTTS's sampling), and drops rows that ended, hit their token limit, or were
cancelled. New generations join between steps.

This module is the loop only, and imports no model library: what a step computes comes from
the engine's :class:`GPTParts` — the PyTorch engine's in :mod:`.torch_step` (ChatTTS's own
modules), the ONNX engine's in :mod:`.onnx.runtime` (ONNX Runtime sessions, numpy). Each row
attends only to its own positions and samples with its own parameters and generator. With the
torch engine a row's numbers do not depend on who else is in the batch at all (oneDNN computes
rows independently); with the ONNX engine they may differ from a solo run by float rounding
(batched kernels, a padded cache): see each implementation. A row whose sampling fails fails
alone; a failed step fails the rows in it.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Sampling:
    """One generation's sampling knobs (ChatTTS ``InferCodeParams`` meanings)."""

    temperature: float = 0.3
    top_p: float | None = 0.7
    top_k: int | None = 20
    repetition_penalty: float = 1.05
    min_new_tokens: int = 0
    max_new_tokens: int = 2048
    manual_seed: int | None = None


class GPTParts(Protocol):
    """What the batcher needs of a model. Hidden states and logits are the model's own arrays
    (torch tensors, numpy arrays); token ids cross as numpy ``int64``. ``eos`` is the end token;
    ``num_vq`` the codebooks sampled per step."""

    @property
    def eos(self) -> int: ...

    @property
    def num_vq(self) -> int: ...

    def session(self) -> AbstractContextManager[Any]:
        """Entered around the batcher's model work (``torch.inference_mode``, or nothing)."""

    def new_hidden(self, gen: Generation) -> Any:
        """The buffer ``[max_new_tokens, hidden]`` a generation's hidden states go into."""

    def new_row(self, gen: Generation) -> Any:
        """A new row's model state: its KV cache, its sampler."""

    def prefill(self, row: Any, emb: Any) -> tuple[Any, Any]:
        """Run the prompt ``emb`` [positions, hidden] into an empty row: the last position's
        hidden state [1, hidden] and its logits [1, num_vq, audio_tokens]."""

    def step(self, rows: list[Any], last: np.ndarray) -> tuple[Any, Any]:
        """One step of every row, ``last`` [rows, num_vq] their newest tokens: hidden states
        [rows, hidden] and logits [rows, num_vq, audio_tokens]."""

    def sample(self, row: Any, sampling: Sampling, history: np.ndarray, logits: Any) -> np.ndarray:
        """ChatTTS's sampling for one row: ``history`` [num_vq, steps] the tokens so far,
        ``logits`` [num_vq, audio_tokens]; returns the next tokens [num_vq] (int64)."""


# --- generations ----------------------------------------------------------------------------------


@dataclass
class Generation:
    """One segment's audio-token generation; filled by the batcher, read by the request.

    ``hidden`` rows ``[:count]`` are final once published, so readers take views, not copies."""

    emb: Any  # [prompt, hidden] prompt embeddings (speaker applied), the model's array type
    sampling: Sampling
    cancelled: Callable[[], bool] = lambda: False
    parts: GPTParts | None = None  # the model; None: the batcher's own
    count: int = 0
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    error: BaseException | None = None
    hidden: Any = field(init=False)  # [max_new_tokens, hidden], made by the model's parts
    ids: np.ndarray = field(init=False)  # [num_vq, tokens] once done
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: bool = field(default=False, init=False)
    _wake_at: float = field(default=float("inf"), init=False)  # count the reader waits for

    def __post_init__(self) -> None:
        self.ids = np.empty((0, 0), np.int64)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def stop(self) -> None:
        """Leave the batch at the next step (the reader went away)."""
        self._stop = True

    def wanted(self) -> bool:
        return not (self._stop or self.cancelled())

    def updates(self, until: Callable[[], int] | None) -> Iterator[tuple[Any, bool]]:
        """Yield ``(hidden[:count], final)`` each time ``count`` reaches ``until()`` (asked
        again after each yield; never when ``until`` is None) and once at the end; raises the
        batcher's error if it failed. The reader wakes only when it has something to do."""
        while True:
            with self._cond:
                self._wake_at = float("inf") if until is None else until()
                self._cond.wait_for(lambda: self.done or self.count >= self._wake_at)
                count, done = self.count, self.done
            if self.error is not None:
                raise self.error
            yield self.hidden[:count], done
            if done:
                return

    def _publish(self, hidden: Any, finish: str | None) -> None:
        with self._cond:
            if hidden is not None:
                self.hidden[self.count] = hidden
                self.count += 1
            if finish is not None:
                self.finish_reason = finish
            if finish is not None or self.count >= self._wake_at:
                self._cond.notify_all()  # wake the reader only when it has something to do

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self.error = exc
            self.finish_reason = "error"
            self._cond.notify_all()


class _Row:
    """Batcher-side state of one generation."""

    def __init__(self, gen: Generation, parts: GPTParts) -> None:
        self.gen, self.parts = gen, parts
        self.state = parts.new_row(gen)
        self.ids = np.zeros((parts.num_vq, gen.sampling.max_new_tokens), np.int64)
        self.steps = 0


class Batcher:
    """The engine's model thread: runs every generation's GPT steps, batched (see the module
    docstring), and, between steps, any other model work handed to it with :meth:`call`.

    All heavy model work of an engine runs on this one thread. On a small CPU this matters:
    every thread that has run a parallel torch op keeps its own OpenMP worker threads, and once
    there are more of those than cores, libgomp stops spin-waiting, which made GPT steps up to
    twice as slow in measurements here (see README, Speed); ONNX Runtime's sessions keep their
    own thread pools, called from this one thread too."""

    def __init__(self, max_batch: int = 4, name: str = "chattts-torch") -> None:
        self.name = name
        self.parts: GPTParts | None = None  # the default model, set once it is loaded
        self.max_batch = max(1, max_batch)
        # called on the batcher thread after every step with (rows, seconds): metrics, tests
        self.listeners: list[Callable[[int, float], None]] = []
        self._pending: collections.deque[Generation] = collections.deque()
        self._tasks: collections.deque[tuple[Callable[[], Any], Future[Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def enqueue(self, gen: Generation) -> Generation:
        """Queue ``gen``; it joins the batch before the next step that has room."""
        self.enqueue_all([gen])
        return gen

    def enqueue_all(self, gens: list[Generation]) -> None:
        """Queue several generations at once (they join the same step when there is room)."""
        for gen in gens:
            gen.parts = gen.parts or self.parts
            if gen.parts is None:
                raise RuntimeError("no model attached to the batcher yet")
            gen.hidden = gen.parts.new_hidden(gen)
        with self._cond:
            self._check_open()
            self._pending.extend(gens)
            self._cond.notify_all()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the model thread, between two GPT steps, and return
        its result (or raise its exception). Called on the model thread itself, runs inline."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: Future[T] = Future()
        with self._cond:
            self._check_open()
            self._tasks.append((functools.partial(fn, *args, **kwargs), future))
            self._cond.notify_all()
        return future.result()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the engine was closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _loop(self) -> None:
        rows: list[_Row] = []
        while True:
            with self._cond:
                if not rows:
                    self._cond.wait_for(lambda: self._closed or bool(self._pending or self._tasks))
                tasks = list(self._tasks)
                self._tasks.clear()
                if self._closed:
                    closed = RuntimeError("the engine was closed")
                    for gen in [*self._pending, *(r.gen for r in rows)]:
                        gen._fail(closed)
                    for _, future in tasks:
                        future.set_exception(closed)
                    self._pending.clear()
                    return
                joining: list[Generation] = []
                while self._pending and len(rows) + len(joining) < self.max_batch:
                    joining.append(self._pending.popleft())
            for task, future in tasks:
                try:
                    future.set_result(task())
                except BaseException as exc:
                    future.set_exception(exc)
            for gen in joining:
                row = self._prefill(gen)
                if row is not None and not gen.done:
                    rows.append(row)
            rows = [r for r in rows if self._keep(r)]
            models: dict[int, list[_Row]] = {}  # engines sharing this thread: one step each
            for r in rows:
                models.setdefault(id(r.parts), []).append(r)
            for group in models.values():
                self._decode(group[0].parts, group)
            rows = [r for r in rows if not r.gen.done]

    def _keep(self, row: _Row) -> bool:
        if row.gen.done:
            return False
        if not row.gen.wanted():
            row.gen._publish(None, "cancelled")
            return False
        return True

    def _prefill(self, gen: Generation) -> _Row | None:
        try:
            if not gen.wanted():
                gen._publish(None, "cancelled")
                return None
            assert gen.parts is not None
            parts = gen.parts
            with parts.session():
                row = _Row(gen, parts)
                started = time.perf_counter()
                hidden, logits = parts.prefill(row.state, gen.emb)
                self._after(parts, [row], hidden, logits, started)
            return row
        except Exception as exc:
            log.exception("GPT prefill failed")
            gen._fail(exc)
            return None

    def _decode(self, parts: GPTParts, rows: list[_Row]) -> None:
        started = time.perf_counter()
        try:
            last = np.stack([r.ids[:, r.steps - 1] for r in rows])  # each row's newest token
            with parts.session():
                hidden, logits = parts.step([r.state for r in rows], last)
                self._after(parts, rows, hidden, logits, started)
        except Exception as exc:
            log.exception("GPT step failed for %d rows", len(rows))
            for r in rows:
                r.gen._fail(exc)

    def _after(
        self, parts: GPTParts, rows: list[_Row], hidden: Any, logits: Any, started: float
    ) -> None:
        for i, row in enumerate(rows):
            history = row.ids[:, : row.steps]
            try:
                token = parts.sample(row.state, row.gen.sampling, history, logits[i])
            except Exception as exc:  # this row's numbers only: the others go on
                log.exception("sampling failed for one row")
                row.gen._fail(exc)
                continue
            stop = bool((token == parts.eos).any())  # the end token's step adds no audio
            if not stop:
                row.ids[:, row.steps] = token
                row.steps += 1
            full = row.steps >= row.gen.sampling.max_new_tokens
            finish = "stop" if stop else "length" if full else None
            if finish:
                row.gen.ids = row.ids[:, : row.steps]
            row.gen._publish(None if stop else hidden[i], finish)
        took = time.perf_counter() - started
        for listener in list(self.listeners):
            listener(len(rows), took)
