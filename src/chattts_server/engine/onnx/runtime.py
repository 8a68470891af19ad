"""The ONNX engine's model work: ONNX Runtime sessions and numpy, no torch.

- :class:`OnnxGPT` is the batcher's :class:`~..batching.GPTParts` on ``gpt.onnx``. Each row
  is prefilled alone (its own KV cache); the rows of a batch then share one cache
  ``[rows, kv_heads, capacity, head_dim]`` per layer, each row's positions first, with a mask
  of the positions each row may see. A step is one session run for all rows; the graph only
  reads the cache and returns the new positions' keys and values, which are written into it in
  place. The cache is rebuilt (copied) only when a row joins or leaves or its capacity (the
  longest row + 64 to 191 positions) runs out. Masked positions get exactly zero weight; a
  row's numbers can still differ from its solo run by float rounding (longer reductions,
  batched matrix kernels), so tokens agree with a solo run unless two candidates are within
  rounding of each other (the tests check equal tokens on the tiny model).
- :func:`istft`: Vocos' inverse STFT (``torch.istft``, ``center=True``, periodic Hann window)
  in numpy, after ``decoder.onnx`` gives the spectrum.
- :func:`log_mel`: the DVAE encoder's features (torchaudio's ``MelSpectrogram``, reflect
  padding, magnitude, HTK mel filters, then ``log(max(x, 1e-5))``) in numpy.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..batching import Generation, Sampling
from .sampling import Sampler


def cpus() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_session(path: str, threads: int | None = None, spin: bool = True) -> Any:
    """An ONNX Runtime CPU session: all graph optimizations, one intra-op pool of ``threads``
    (default: :func:`cpus`), sequential execution. ``spin``: its threads spin-wait after a run
    (right for the GPT, run step after step; the decoder's and encoder's pools should not keep
    two cores busy between their runs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or cpus()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(eq=False)
class _Row:
    sampler: Sampler
    kv: list[np.ndarray] | None = None  # its own cache until it joins a batch
    length: int = 0  # positions in its cache (the next position id)


@dataclass(eq=False)
class _Batch:
    rows: list[_Row]  # the rows themselves (compared by identity: ids could be reused)
    kv: list[np.ndarray]  # per layer: key, value [rows, kv_heads, capacity, head_dim]
    mask: np.ndarray  # [rows, capacity] int64: 1 where the row has a position

    @property
    def capacity(self) -> int:
        return int(self.mask.shape[1])


@dataclass(eq=False)
class OnnxGPT:
    """:class:`~..batching.GPTParts` on an exported ``gpt.onnx`` (see the module docstring)."""

    graph: Any  # the gpt.onnx session
    emb_code: np.ndarray  # [num_vq, audio_tokens, hidden] float32
    layers: int
    kv_heads: int
    head_dim: int
    eos: int
    num_vq: int
    _batch: _Batch | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._names = [i.name for i in self.graph.get_inputs()]

    def session(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def new_hidden(self, gen: Generation) -> np.ndarray:
        return np.empty((gen.sampling.max_new_tokens, gen.emb.shape[-1]), np.float32)

    def new_row(self, gen: Generation) -> _Row:
        return _Row(Sampler(gen.sampling, self.eos))

    def prefill(self, row: _Row, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = emb.shape[0]
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32)
        out = self._run(
            np.ascontiguousarray(emb[None], np.float32),
            np.ones((1, n), np.int64),
            np.arange(n, dtype=np.int64)[None],
            [empty] * (2 * self.layers),
        )
        row.kv, row.length = out[2:], n
        return out[0], out[1]

    def step(self, rows: list[_Row], last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self._batch_for(rows)
        b = len(rows)
        emb = self.emb_code[np.arange(self.num_vq)[None, :], last].sum(axis=1)  # [B, H]
        mask = np.concatenate([batch.mask, np.ones((b, 1), np.int64)], axis=1)
        lengths = np.array([r.length for r in rows], np.int64)
        out = self._run(emb[:, None].astype(np.float32), mask, lengths[:, None], batch.kv)
        index = np.arange(b)
        for cache, new in zip(batch.kv, out[2:], strict=True):  # in place: [B, kvh, 1, hd]
            cache[index, :, lengths] = new[:, :, 0]
        batch.mask[index, lengths] = 1
        for r in rows:
            r.length += 1
        return out[0], out[1]

    def sample(
        self, row: _Row, sampling: Sampling, history: np.ndarray, logits: np.ndarray
    ) -> np.ndarray:
        return row.sampler.sample(logits, history)

    def _run(
        self, emb: np.ndarray, mask: np.ndarray, positions: np.ndarray, kv: list[np.ndarray]
    ) -> list[np.ndarray]:
        feeds = dict(zip(self._names, [emb, mask, positions, *kv], strict=True))
        return list(self.graph.run(None, feeds))

    @staticmethod
    def room(need: int) -> int:
        """The capacity of a rebuilt cache for rows of up to ``need`` positions: 64 to 191 more,
        in steps of 128 (the attention reads the whole capacity; growing copies the cache
        once per 128 steps at most)."""
        return -(-(need + 64) // 128) * 128

    def _batch_for(self, rows: list[_Row]) -> _Batch:
        """The cache of exactly these rows with room for this step's positions: the same one
        step after step (written in place), rebuilt when a row joins or leaves or the room
        runs out (capacity doubles, so that is rare)."""
        old = self._batch
        need = max(r.length for r in rows) + 1
        if (
            old is not None
            and need <= old.capacity
            and len(old.rows) == len(rows)
            and all(a is b for a, b in zip(old.rows, rows, strict=True))
        ):
            return old
        capacity = self.room(need)
        kv = [
            np.zeros((len(rows), self.kv_heads, capacity, self.head_dim), np.float32)
            for _ in range(2 * self.layers)
        ]
        mask = np.zeros((len(rows), capacity), np.int64)
        for i, r in enumerate(rows):
            if r.kv is not None:  # prefilled, joining now
                source, j = r.kv, 0
                r.kv = None
            else:
                j = next((j for j, o in enumerate(old.rows) if o is r), -1) if old else -1
                assert old is not None and j >= 0, "a row is in no cache"
                source = old.kv
            n = r.length  # a row's positions are the first n of its cache
            mask[i, :n] = 1
            for dst, src in zip(kv, source, strict=True):
                dst[i, :, :n] = src[j, :, :n]
        self._batch = _Batch(list(rows), kv, mask)
        return self._batch


# --- audio -------------------------------------------------------------------------------------


def hann(n: int) -> np.ndarray:
    """torch.hann_window(n) (periodic), float32."""
    k = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)


def istft(real: np.ndarray, imag: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``torch.istft(real + i·imag, n_fft, hop, n_fft, hann, center=True)`` for one signal
    ([freqs, frames] in; ``hop × (frames − 1)`` samples out), float32."""
    window = hann(n_fft).astype(np.float64)
    frames = np.fft.irfft(real.astype(np.float64) + 1j * imag.astype(np.float64), n=n_fft, axis=0)
    frames *= window[:, None]
    count = frames.shape[1]
    size = n_fft + hop * (count - 1)
    out = np.zeros(size)
    envelope = np.zeros(size)
    square = window**2
    for t in range(count):
        out[t * hop : t * hop + n_fft] += frames[:, t]
        envelope[t * hop : t * hop + n_fft] += square
    half = n_fft // 2
    out, envelope = out[half : size - half], envelope[half : size - half]
    return (out / np.where(envelope > 1e-11, envelope, 1.0)).astype(np.float32)


def log_mel(pcm: np.ndarray, spec: dict[str, Any], filters: np.ndarray) -> np.ndarray:
    """The DVAE encoder's input features [1, n_mels, frames] for a mono clip."""
    n_fft, hop = int(spec["n_fft"]), int(spec["hop_length"])
    x = pcm.astype(np.float64)
    if spec.get("center", True):
        x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    count = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    window = hann(int(spec["win_length"])).astype(np.float64)
    mag = np.abs(np.fft.rfft(x[idx] * window, n=n_fft, axis=1))  # [frames, freqs], power 1
    mel = mag @ filters.astype(np.float64)  # [frames, mels]
    return np.log(np.maximum(mel, 1e-5)).T[None].astype(np.float32)
