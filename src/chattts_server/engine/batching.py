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
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


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
            packed = PackedLinear(lin)(x)
            rows = torch.cat([PackedLinear(lin)(x[i : i + 1]) for i in range(5)])
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

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))


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
            assert n == 1 or cache.length == 0, "a prefill must start from an empty cache"
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


@dataclass
class Generation:
    """One segment's audio-token generation; filled by the batcher, read by the request.

    ``hidden`` rows ``[:count]`` are final once published, so readers take views, not copies."""

    emb: torch.Tensor  # [prompt, hidden] prompt embeddings (speaker applied)
    sampling: Sampling
    cancelled: Callable[[], bool] = lambda: False
    count: int = 0
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    error: BaseException | None = None
    hidden: torch.Tensor = field(init=False)
    ids: torch.Tensor = field(init=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False)
    _stop: bool = field(default=False, init=False)

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

    def updates(self, every: int | None) -> Iterator[tuple[torch.Tensor, bool]]:
        """Yield ``(hidden[:count], final)`` each time ``every`` new rows arrived (never when
        ``every`` is None) and once at the end; raises the batcher's error if it failed."""
        seen = 0
        while True:
            with self._cond:
                self._cond.wait_for(self._ready_after(seen, every))
                count, done = self.count, self.done
            if self.error is not None:
                raise self.error
            yield self.hidden[:count], done
            if done:
                return
            seen = count

    def _ready_after(self, seen: int, every: int | None) -> Callable[[], bool]:
        def ready() -> bool:
            return self.done or (every is not None and self.count >= seen + every)

        return ready

    def _publish(self, hidden: torch.Tensor | None, finish: str | None) -> None:
        with self._cond:
            if hidden is not None:
                self.hidden[self.count] = hidden
                self.count += 1
            if finish is not None:
                self.finish_reason = finish
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self.error = exc
            self.finish_reason = "error"
            self._cond.notify_all()


class _Row:
    """Batcher-side state of one generation."""

    def __init__(self, gen: Generation, step: StepModel, processors: list[Any], vq: int) -> None:
        s = gen.sampling
        self.gen, self.processors = gen, processors
        self.cache = step.new_cache(gen.emb.shape[0] + min(s.max_new_tokens, 256))
        self.ids = torch.empty(vq, s.max_new_tokens, dtype=torch.long, device=step.device)
        self.steps = 0
        self.generator: torch.Generator | None = None
        if s.manual_seed is not None:
            self.generator = torch.Generator(device=step.device)
        self.last: torch.Tensor | None = None


class Batcher:
    """The thread that runs every generation's GPT steps, batched (see the module docstring).

    ``embed_code(ids [B, vq]) -> [B, hidden]`` embeds sampled tokens; ``heads(hidden [B, H])
    -> logits [B, vq, audio_tokens]``; ``make_processors(sampling)`` gives ChatTTS's logits
    processors for a row; ``eos`` is the end token."""

    def __init__(
        self,
        step: StepModel,
        *,
        embed_code: Callable[[torch.Tensor], torch.Tensor],
        heads: Callable[[torch.Tensor], torch.Tensor],
        make_processors: Callable[[Sampling], list[Any]],
        eos: int,
        num_vq: int,
        max_batch: int = 4,
    ) -> None:
        self.step_model = step
        self.embed_code, self.heads, self.make_processors = embed_code, heads, make_processors
        self.eos, self.num_vq, self.max_batch = eos, num_vq, max(1, max_batch)
        # called on the batcher thread after every step with (rows, seconds): metrics, tests
        self.listeners: list[Callable[[int, float], None]] = []
        self._pending: collections.deque[Generation] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.steps = 0  # GPT steps run (prefills included), for tests and metrics
        self.rows_stepped = 0  # sum of batch sizes over the decode steps
        self.max_rows_seen = 0

    def submit(self, gen: Generation) -> Generation:
        """Queue ``gen``; it joins the batch before the next step that has room."""
        self.submit_all([gen])
        return gen

    def submit_all(self, gens: list[Generation]) -> None:
        """Queue several generations at once (they join the same step when there is room)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.extend(gens)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="gpt-batcher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _loop(self) -> None:
        rows: list[_Row] = []
        with torch.inference_mode():
            while True:
                with self._cond:
                    if not rows:
                        self._cond.wait_for(lambda: self._closed or bool(self._pending))
                    if self._closed:
                        for gen in [*self._pending, *(r.gen for r in rows)]:
                            gen._fail(RuntimeError("the engine was closed"))
                        self._pending.clear()
                        return
                    joining: list[Generation] = []
                    while self._pending and len(rows) + len(joining) < self.max_batch:
                        joining.append(self._pending.popleft())
                for gen in joining:
                    row = self._prefill(gen)
                    if row is not None and not gen.done:
                        rows.append(row)
                rows = [r for r in rows if self._keep(r)]
                if rows:
                    self._decode(rows)
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
            row = _Row(gen, self.step_model, self.make_processors(gen.sampling), self.num_vq)
            started = time.perf_counter()
            hidden = self.step_model.forward(gen.emb, [(row.cache, gen.emb.shape[0])])
            self._after([row], hidden[-1:], started)
            return row
        except Exception as exc:
            log.exception("GPT prefill failed")
            gen._fail(exc)
            return None

    def _decode(self, rows: list[_Row]) -> None:
        started = time.perf_counter()
        try:
            last = torch.stack([r.last for r in rows if r.last is not None])
            emb = self.embed_code(last)
            hidden = self.step_model.forward(emb, [(r.cache, 1) for r in rows])
            self.rows_stepped += len(rows)
            self.max_rows_seen = max(self.max_rows_seen, len(rows))
            self._after(rows, hidden, started)
        except Exception as exc:
            log.exception("GPT step failed for %d rows", len(rows))
            for r in rows:
                r.gen._fail(exc)

    def _after(self, rows: list[_Row], hidden: torch.Tensor, started: float) -> None:
        logits = self.heads(hidden)  # [B, vq, tokens]
        for i, row in enumerate(rows):
            token = self._sample(row, logits[i])
            gen, s = row.gen, row.gen.sampling
            if bool(token.eq(self.eos).any()):
                gen.ids = row.ids[:, : row.steps]
                gen._publish(None, "stop")
                continue
            row.ids[:, row.steps] = token
            row.steps += 1
            row.last = token
            finish = "length" if row.steps >= s.max_new_tokens else None
            if finish:
                gen.ids = row.ids[:, : row.steps]
            gen._publish(hidden[i], finish)
        self.steps += 1
        took = time.perf_counter() - started
        for listener in list(self.listeners):
            listener(len(rows), took)

    def _sample(self, row: _Row, logits: torch.Tensor) -> torch.Tensor:
        """ChatTTS's sampling for one row: temperature, its processors, min-length, multinomial
        (re-seeded every step when the request has a ``manual_seed``, as ChatTTS does)."""
        s = row.gen.sampling
        logits = logits.float() / s.temperature
        history = row.ids[:, : row.steps]
        for proc in row.processors:
            logits = proc(history, logits)
        if row.steps < s.min_new_tokens or (row.steps == 0 and s.manual_seed is None):
            # ChatTTS re-draws an empty result when unseeded (ensure_non_empty): same outcome
            logits[:, self.eos] = -torch.inf
        scores = F.softmax(logits, dim=-1)
        if row.generator is not None:
            assert s.manual_seed is not None
            return torch.multinomial(scores, 1, generator=row.generator.manual_seed(s.manual_seed))[
                :, 0
            ]
        return torch.multinomial(scores, 1)[:, 0]
