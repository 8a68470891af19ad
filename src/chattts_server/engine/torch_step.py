"""The PyTorch engine's GPT step: ChatTTS's own modules under the batcher.

:class:`TorchGPT` is the :class:`~.batching.GPTParts` of :class:`~.chattts_engine.ChatTTSEngine`:
the step (:class:`StepModel`, a plain Llama forward over the modules of ChatTTS's
``LlamaModel``, each row with its own KV cache and its own attention, the linear layers batched;
it checks itself against the transformers forward in the tests), the code embeddings and heads,
and ChatTTS's sampling (its own logits processors, a generator per row re-seeded every step as
ChatTTS does).

On CPU the linear layers run on oneDNN with pre-packed weights (:class:`PackedLinear`), whose
rows are computed independently of each other (checked at load and in the tests; int8 dynamic
quantization is the exception, its activation scale is per batch). Packing is also where the
single-stream speed comes from: on this kind of machine oneDNN's packed fp32 kernels read the
weights about twice as fast as the default BLAS path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batching import Generation, Sampling

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
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
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


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# --- the model's parts for the batcher --------------------------------------------------------


@dataclass
class _TorchRow:
    cache: KVCache
    processors: list[Any]
    generator: torch.Generator | None


@dataclass(frozen=True)
class TorchGPT:
    """:class:`~.batching.GPTParts` on ChatTTS's torch modules. ``embed_code(ids [B, vq]) ->
    [B, hidden]`` embeds sampled tokens; ``heads(hidden [B, H]) -> logits [B, vq,
    audio_tokens]``; ``make_processors(sampling)`` gives ChatTTS's logits processors for a row."""

    step_model: StepModel
    embed_code: Callable[[torch.Tensor], torch.Tensor]
    heads: Callable[[torch.Tensor], torch.Tensor]
    make_processors: Callable[[Sampling], list[Any]]
    eos: int
    num_vq: int

    def session(self) -> Any:
        return torch.inference_mode()

    def new_hidden(self, gen: Generation) -> torch.Tensor:
        limit = gen.sampling.max_new_tokens
        return torch.empty(limit, gen.emb.shape[-1], device=gen.emb.device)

    def new_row(self, gen: Generation) -> _TorchRow:
        s, step = gen.sampling, self.step_model
        cache = step.new_cache(gen.emb.shape[0] + min(s.max_new_tokens, 256))
        generator = None if s.manual_seed is None else torch.Generator(device=step.device)
        return _TorchRow(cache, self.make_processors(s), generator)

    def prefill(self, row: _TorchRow, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.step_model.forward(emb, [(row.cache, emb.shape[0])])[-1:]
        return hidden, self.heads(hidden)

    def step(self, rows: list[_TorchRow], last: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed_code(torch.as_tensor(last, device=self.step_model.device))
        hidden = self.step_model.forward(emb, [(r.cache, 1) for r in rows])
        return hidden, self.heads(hidden)

    def sample(
        self, row: _TorchRow, sampling: Sampling, history: np.ndarray, logits: torch.Tensor
    ) -> np.ndarray:
        """ChatTTS's sampling for one row: temperature, its processors, min-length, multinomial
        (re-seeded every step when the request has a ``manual_seed``, as ChatTTS does)."""
        s = sampling
        logits = logits.float() / s.temperature
        steps = history.shape[1]
        ids = torch.as_tensor(history, device=logits.device)
        for proc in row.processors:
            logits = proc(ids, logits)
        if steps < s.min_new_tokens or (steps == 0 and s.manual_seed is None):
            # ChatTTS re-draws an empty result when unseeded (ensure_non_empty): same outcome
            logits[:, self.eos] = -torch.inf
        scores = F.softmax(logits, dim=-1)
        generator = None
        if row.generator is not None and s.manual_seed is not None:
            generator = row.generator.manual_seed(s.manual_seed)
        return torch.multinomial(scores, 1, generator=generator)[:, 0].cpu().numpy()
