"""Continuous batching: concurrent requests share each GPT step.

On CPU a GPT step costs what it takes to read the weights (~755 MB for the full model), so
running four requests' next tokens through one step costs little more than one. A single
:class:`Batcher` thread owns the GPT. Each text segment to speak becomes a :class:`Generation`:
its prompt is prefilled alone, then it joins the running batch; every step feeds each active
generation's last token through the GPT once, samples every row with that row's own params
and seed (ChatTTS's own logits processors), and drops rows that ended, hit their token limit,
or were cancelled. New generations join between steps.

A row's result does not depend on who else is in the batch: attention runs per row over the
row's own KV cache, and on CPU the linear layers run on oneDNN with pre-packed weights
(:class:`PackedLinear`), whose rows are computed independently of each other (checked at load
and in the tests; int8 dynamic quantization is the exception, its activation scale is per
batch). Packing is also where the single-stream speed comes from: on this kind of machine
oneDNN's packed fp32 kernels read the weights about twice as fast as the default BLAS path.

The step itself (:class:`StepModel`) is a plain Llama forward over the modules of ChatTTS's
``LlamaModel``; it checks itself against the transformers forward in the tests.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)
T = TypeVar("T")


# --- linear layers ------------------------------------------------------------------------------


class PackedLinear(nn.Module):
    """A bias-optional ``nn.Linear`` whose weight is pre-packed for oneDNN (CPU only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.dtype = weight.dtype
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, 4)
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).to(self.dtype).contiguous()
        y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, "none", [], "")
        return y.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN packed"


def packing_available() -> bool:
    """Whether this torch build can run :class:`PackedLinear` (and it agrees with ``F.linear``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        with torch.inference_mode():
            lin = nn.Linear(64, 48)
            x = torch.randn(5, 64)
            layer = PackedLinear(lin)
            packed = layer(x)
            rows = torch.cat([layer(x[i : i + 1]) for i in range(5)])
            return bool(
                torch.allclose(packed, F.linear(x, lin.weight, lin.bias), atol=1e-5)
                and torch.equal(packed, rows)
            )
    except Exception:  # op missing in this build
        return False


def pack_linears(module: nn.Module) -> int:
    """Replace every float ``nn.Linear`` under ``module`` by a :class:`PackedLinear`."""
    count = 0
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear and child.weight.dtype in (torch.float32, torch.bfloat16):
            setattr(module, name, PackedLinear(child))
            count += 1
        else:
            count += pack_linears(child)
    return count


# --- the step -------------------------------------------------------------------------------------


class KVCache:
    """One row's keys and values for every layer; grows by doubling."""

    def __init__(
        self, layers: int, heads: int, head_dim: int, capacity: int, dtype: Any, device: Any
    ) -> None:
        shape = (heads, max(1, capacity), head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Store ``k``, ``v`` [heads, n, dim] after the committed length; return the full K, V."""
        end = self.length + k.shape[1]
        if end > self.k[layer].shape[1]:
            self._grow(layer, end)
        self.k[layer][:, self.length : end] = k
        self.v[layer][:, self.length : end] = v
        return self.k[layer][:, :end], self.v[layer][:, :end]

    def _grow(self, layer: int, need: int) -> None:
        cap = max(need, 2 * self.k[layer].shape[1])
        for store in (self.k, self.v):
            old = store[layer]
            new = old.new_empty((old.shape[0], cap, old.shape[2]))
            new[:, : self.length] = old[:, : self.length]
            store[layer] = new


class StepModel:
    """A Llama forward over ChatTTS's ``LlamaModel`` modules, for rows with their own caches."""

    def __init__(self, llama: Any) -> None:
        cfg = llama.config
        self.llama = llama
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.dtype = llama.norm.weight.dtype
        self.device = llama.norm.weight.device

    def new_cache(self, capacity: int) -> KVCache:
        return KVCache(
            len(self.llama.layers), self.kv_heads, self.head_dim, capacity, self.dtype, self.device
        )

    def forward(self, x: torch.Tensor, rows: list[tuple[KVCache, int]]) -> torch.Tensor:
        """``x`` [N, hidden]: the new positions of every row, row after row; ``rows``: each row's
        cache and how many of the N positions are its. Returns the final hidden states [N, H]
        (float32) and commits the new positions to the caches. A row with more than one new
        position (a prefill) must start from an empty cache."""
        for cache, n in rows:
            assert n == 1 or cache.length == 0, "a prefill must start from an empty cache"
        llama = self.llama
        x = x.to(self.dtype)
        positions = torch.cat([torch.arange(c.length, c.length + n) for c, n in rows])
        positions = positions.to(x.device)
        cos, sin = llama.rotary_emb(x, positions[None])
        cos, sin = cos[0][:, None, :], sin[0][:, None, :]  # [N, 1, dim]
        for index, layer in enumerate(llama.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(-1, self.heads, self.head_dim)
            k = attn.k_proj(h).view(-1, self.kv_heads, self.head_dim)
            v = attn.v_proj(h).view(-1, self.kv_heads, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            out = torch.empty_like(q)
            start = 0
            for cache, n in rows:
                sl = slice(start, start + n)
                keys, values = cache.append(index, k[sl].transpose(0, 1), v[sl].transpose(0, 1))
                if self.kv_heads != self.heads:
                    rep = self.heads // self.kv_heads
                    keys = keys.repeat_interleave(rep, 0)
                    values = values.repeat_interleave(rep, 0)
                out[sl] = F.scaled_dot_product_attention(
                    q[sl].transpose(0, 1)[None], keys[None], values[None], is_causal=n > 1
                )[0].transpose(0, 1)
                start += n
            x = x + attn.o_proj(out.reshape(-1, self.heads * self.head_dim))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        for cache, n in rows:
            cache.length += n
        return llama.norm(x).float()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# --- generations ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class GPTParts:
    """What the batcher needs of the model. ``embed_code(ids [B, vq]) -> [B, hidden]`` embeds
    sampled tokens; ``heads(hidden [B, H]) -> logits [B, vq, audio_tokens]``;
    ``make_processors(sampling)`` gives ChatTTS's logits processors for a row; ``eos`` is the
    end token."""

    step: StepModel
    embed_code: Callable[[torch.Tensor], torch.Tensor]
    heads: Callable[[torch.Tensor], torch.Tensor]
    make_processors: Callable[[Sampling], list[Any]]
    eos: int
    num_vq: int


@dataclass
class Generation:
    """One segment's audio-token generation; filled by the batcher, read by the request.

    ``hidden`` rows ``[:count]`` are final once published, so readers take views, not copies."""

    emb: torch.Tensor  # [prompt, hidden] prompt embeddings (speaker applied)
    sampling: Sampling
    cancelled: Callable[[], bool] = lambda: False
    parts: GPTParts | None = None  # the model; None: the batcher's own
    count: int = 0
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    error: BaseException | None = None
    hidden: torch.Tensor = field(init=False)
    ids: torch.Tensor = field(init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: bool = field(default=False, init=False)
    _wake_at: float = field(default=float("inf"), init=False)  # count the reader waits for

    def __post_init__(self) -> None:
        limit = self.sampling.max_new_tokens
        self.hidden = torch.empty(limit, self.emb.shape[-1], device=self.emb.device)
        self.ids = torch.empty(0, dtype=torch.long)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def stop(self) -> None:
        """Leave the batch at the next step (the reader went away)."""
        self._stop = True

    def wanted(self) -> bool:
        return not (self._stop or self.cancelled())

    def updates(self, until: Callable[[], int] | None) -> Iterator[tuple[torch.Tensor, bool]]:
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

    def _publish(self, hidden: torch.Tensor | None, finish: str | None) -> None:
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
        s, step = gen.sampling, parts.step
        self.gen, self.parts, self.processors = gen, parts, parts.make_processors(s)
        self.cache = step.new_cache(gen.emb.shape[0] + min(s.max_new_tokens, 256))
        self.ids = torch.empty(parts.num_vq, s.max_new_tokens, dtype=torch.long, device=step.device)
        self.steps = 0
        self.generator: torch.Generator | None = None
        if s.manual_seed is not None:
            self.generator = torch.Generator(device=step.device)


class Batcher:
    """The engine's torch thread: runs every generation's GPT steps, batched (see the module
    docstring), and, between steps, any other model work handed to it with :meth:`call`.

    All heavy torch work of an engine runs on this one thread. On a small CPU this matters:
    every thread that has run a parallel torch op keeps its own OpenMP worker threads, and once
    there are more of those than cores, libgomp stops spin-waiting, which made GPT steps up to
    twice as slow in measurements here (see README, Speed)."""

    def __init__(self, max_batch: int = 4) -> None:
        self.parts: GPTParts | None = None  # the default model, set once it is loaded
        self.max_batch = max(1, max_batch)
        # called on the batcher thread after every step with (rows, seconds): metrics, tests
        self.listeners: list[Callable[[int, float], None]] = []
        self._pending: collections.deque[Generation] = collections.deque()
        self._tasks: collections.deque[tuple[Callable[[], Any], Future[Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def step_model(self) -> StepModel:
        if self.parts is None:
            raise RuntimeError("no model attached to the batcher yet")
        return self.parts.step

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
        with self._cond:
            self._check_open()
            self._pending.extend(gens)
            self._cond.notify_all()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the torch thread, between two GPT steps, and return
        its result (or raise its exception). Called on the torch thread itself, runs inline."""
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
            self._thread = threading.Thread(target=self._loop, name="chattts-torch", daemon=True)
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
            with torch.inference_mode():
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
            row = _Row(gen, parts)
            started = time.perf_counter()
            hidden = parts.step.forward(gen.emb, [(row.cache, gen.emb.shape[0])])
            self._after(parts, [row], hidden[-1:], started)
            return row
        except Exception as exc:
            log.exception("GPT prefill failed")
            gen._fail(exc)
            return None

    def _decode(self, parts: GPTParts, rows: list[_Row]) -> None:
        started = time.perf_counter()
        try:
            last = torch.stack([r.ids[:, r.steps - 1] for r in rows])  # each row's newest token
            emb = parts.embed_code(last)
            hidden = parts.step.forward(emb, [(r.cache, 1) for r in rows])
            self._after(parts, rows, hidden, started)
        except Exception as exc:
            log.exception("GPT step failed for %d rows", len(rows))
            for r in rows:
                r.gen._fail(exc)

    def _after(
        self, parts: GPTParts, rows: list[_Row], hidden: torch.Tensor, started: float
    ) -> None:
        logits = parts.heads(hidden)  # [B, vq, tokens]
        for i, row in enumerate(rows):
            token = self._sample(row, logits[i], parts.eos)
            stop = bool(token.eq(parts.eos).any())  # the end token's step adds no audio
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

    def _sample(self, row: _Row, logits: torch.Tensor, eos: int) -> torch.Tensor:
        """ChatTTS's sampling for one row: temperature, its processors, min-length, multinomial
        (re-seeded every step when the request has a ``manual_seed``, as ChatTTS does)."""
        s = row.gen.sampling
        logits = logits.float() / s.temperature
        history = row.ids[:, : row.steps]
        for proc in row.processors:
            logits = proc(history, logits)
        if row.steps < s.min_new_tokens or (row.steps == 0 and s.manual_seed is None):
            # ChatTTS re-draws an empty result when unseeded (ensure_non_empty): same outcome
            logits[:, eos] = -torch.inf
        scores = F.softmax(logits, dim=-1)
        generator = None
        if row.generator is not None and s.manual_seed is not None:
            generator = row.generator.manual_seed(s.manual_seed)
        return torch.multinomial(scores, 1, generator=generator)[:, 0]
