"""ChatTTS's audio-token sampling in numpy: the torch engine's per-row ``sample`` without torch.

For one row and one step, the torch engine (``TorchGPT.sample``, formerly ``Batcher._sample``)
takes the code heads' logits [num_vq, audio_tokens] and the row's tokens so far [num_vq, steps]
and does, in this order:

1. ``logits / temperature`` (float32);
2. ChatTTS's ``CustomRepetitionPenaltyLogitsProcessorRepeat(penalty, max_input_ids=eos,
   past_window=16)`` (``ChatTTS/model/processors.py``): counts of each token over the last 16
   steps of its codebook; logits < 0 multiplied by ``penalty**count``, others divided;
3. transformers' ``TopPLogitsWarper(top_p, min_tokens_to_keep=3)``: sort ascending, softmax,
   cumulative sum, drop the tokens whose cumulative probability is ``<= 1 - top_p`` except the
   3 most likely; then ``TopKLogitsWarper(top_k, min_tokens_to_keep=3)``: drop what is below
   the ``max(top_k, 3)``-th largest value (ties at the threshold stay);
4. the end token masked (``-inf``) while ``steps < min_new_tokens``, and at step 0 when there
   is no ``manual_seed`` (the engine's stand-in for ChatTTS's ``ensure_non_empty``);
5. softmax, then one draw per codebook.

Steps 1–4 are :func:`process`; :func:`softmax` is step 5's softmax; :class:`Sampler` adds the
draw. How close each step is to torch (CPU, torch 2.9), as measured in
``tests/engine/test_onnx_sampling.py`` over thousands of random and adversarial rows:

- temperature, repetition penalty (``penalty**count`` is computed as torch does: the float32
  penalty raised in double, rounded to float32), top-k and the end-token mask: bit for bit;
- top-p: the cumulative sum is accumulated in double and rounded to float32 as torch's CPU
  ``cumsum`` does, the threshold compared in float32 as torch does; the softmax before it
  differs from torch's vectorised one by an ulp or so, which can only matter for a token whose
  cumulative probability lies within ~1e-7 of ``1 - top_p``; the same tokens were dropped in
  every case tested but for ties (next point);
- ties: torch sorts with an unstable sort, this module with a stable one; when tokens with
  exactly equal logits straddle the top-p cut (or the 3-token minimum), the same *number* of
  them is dropped but not necessarily the same ones;
- the final probabilities: within 1e-6 relative of torch's.

The draw does not reproduce ``torch.multinomial``'s numbers (nor need it): it is an inverse-CDF
draw on a numpy ``PCG64`` generator per row. With a ``manual_seed`` the generator is put back
to that seed's state before every draw, as the torch engine re-seeds its generator every step,
so a seeded request is deterministic in this engine; without one the generator is seeded from
the OS once per row.

ChatTTS behaviour kept: the penalty processor means to leave token ids ``>= max_input_ids``
unpenalised but zeroes *codebook rows* ``>= max_input_ids`` instead (``freq.narrow(0, ...)``),
which never happens for 4 codebooks; the end token (``eos = max_input_ids``) is penalised
like any other token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "MIN_TOKENS_TO_KEEP",
    "PAST_WINDOW",
    "Sampler",
    "SamplingParams",
    "process",
    "repetition_penalty",
    "sample_batch",
    "softmax",
    "top_k_filter",
    "top_p_filter",
]

PAST_WINDOW = 16  # ChatTTS gen_logits: CustomRepetitionPenaltyLogitsProcessorRepeat(..., 16)
MIN_TOKENS_TO_KEEP = 3  # ChatTTS gen_logits: Top{P,K}LogitsWarper(..., min_tokens_to_keep=3)
_NEG_INF = np.float32(-np.inf)


class SamplingParams(Protocol):
    """A row's sampling knobs: :class:`~chattts_server.engine.batching.Sampling` fits."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def top_k(self) -> int | None: ...
    @property
    def repetition_penalty(self) -> float: ...
    @property
    def min_new_tokens(self) -> int: ...
    @property
    def manual_seed(self) -> int | None: ...


def repetition_penalty(
    logits: np.ndarray,
    history: np.ndarray,
    penalty: float,
    max_input_ids: int,
    past_window: int = PAST_WINDOW,
) -> np.ndarray:
    """ChatTTS's ``CustomRepetitionPenaltyLogitsProcessorRepeat(penalty, max_input_ids,
    past_window)(history, logits)``: ``logits`` [rows, tokens] float32, ``history`` [rows,
    steps] ints in ``0…tokens-1``. Returns a new array."""
    rows, n = logits.shape
    if history.shape[1] > past_window:
        history = history[:, -past_window:]
    out = logits.copy()
    if history.size == 0:
        return out
    if history.min() < 0 or history.max() >= n:  # F.one_hot refuses these too
        raise ValueError(f"history holds token ids outside 0…{n - 1}")
    flat = (history + np.arange(rows, dtype=np.int64)[:, None] * n).ravel()
    freq = np.bincount(flat, minlength=rows * n).reshape(rows, n)
    if rows > max_input_ids:  # ChatTTS's freq.narrow(0, max_input_ids, ...).zero_()
        freq[max_input_ids:] = 0
    hit = freq > 0  # alpha == 1 elsewhere: x * 1 == x / 1 == x
    # torch.pow(penalty, freq): the float32 penalty raised in double, rounded once
    alpha = (np.float64(np.float32(penalty)) ** freq[hit]).astype(np.float32)
    x = out[hit]
    out[hit] = np.where(x < 0, x * alpha, x / alpha)
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float32, arranged as torch's CPU kernel (max, exp of the
    difference, sum, times the reciprocal of the sum)."""
    with np.errstate(invalid="ignore"):  # a row without a finite logit is NaN, as in torch
        m = logits.max(axis=-1, keepdims=True)
        e = np.exp(logits - m)
        return e * (np.float32(1.0) / e.sum(axis=-1, keepdims=True, dtype=np.float32))


def top_p_filter(
    logits: np.ndarray, top_p: float, min_tokens_to_keep: int = MIN_TOKENS_TO_KEEP
) -> np.ndarray:
    """transformers' ``TopPLogitsWarper(top_p, min_tokens_to_keep=...)`` on [rows, tokens].

    The cumulative probabilities grow along the ascending order, so the tokens dropped are a
    prefix of it: the first ``min(#(cumulative <= 1 - top_p), tokens - min_tokens_to_keep)``."""
    rows, n = logits.shape
    order = np.argsort(logits, axis=-1, kind="stable")
    ordered = np.take_along_axis(logits, order, axis=-1)
    cumulative = np.cumsum(softmax(ordered), axis=-1, dtype=np.float64).astype(np.float32)
    count = (cumulative <= np.float32(1.0 - float(top_p))).sum(axis=-1)
    count = np.minimum(count, max(n - min_tokens_to_keep, 0))
    out = logits.copy()
    for r in range(rows):
        out[r, order[r, : count[r]]] = _NEG_INF
    return out


def top_k_filter(
    logits: np.ndarray, top_k: int, min_tokens_to_keep: int = MIN_TOKENS_TO_KEEP
) -> np.ndarray:
    """transformers' ``TopKLogitsWarper(top_k, min_tokens_to_keep=...)`` on [rows, tokens]."""
    n = logits.shape[-1]
    k = min(max(top_k, min_tokens_to_keep), n)
    kth = np.partition(logits, n - k, axis=-1)[..., n - k : n - k + 1]
    return np.where(logits < kth, _NEG_INF, logits)


def _check(params: SamplingParams) -> None:
    """The checks ChatTTS's and transformers' constructors make (``gen_logits``)."""
    pen = params.repetition_penalty
    if pen is not None and pen != 1 and (not isinstance(pen, float) or not pen > 0):
        raise ValueError(f"`penalty` has to be a strictly positive float, but is {pen}")
    if params.top_p is not None and not 0 <= float(params.top_p) <= 1:
        raise ValueError(f"`top_p` has to be a float > 0 and < 1, but is {params.top_p}")
    top_k = params.top_k
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"`top_k` has to be a strictly positive integer, but is {top_k}")


def process(
    logits: npt.ArrayLike, history: npt.ArrayLike, params: SamplingParams, eos: int
) -> np.ndarray:
    """Steps 1–4 of the module docstring: the logits [num_vq, audio_tokens] (float32) that the
    torch engine hands to its softmax, for this row's ``history`` [num_vq, steps] and ``eos``
    (``num_audio_tokens - 1``, also the penalty's ``max_input_ids``)."""
    _check(params)
    x = np.asarray(logits, dtype=np.float32) / np.float32(params.temperature)
    hist = np.asarray(history, dtype=np.int64)
    if hist.ndim != 2 or hist.shape[0] != x.shape[0]:
        raise ValueError(f"history must be [{x.shape[0]}, steps], not {hist.shape}")
    pen = params.repetition_penalty
    if pen is not None and pen != 1:
        x = repetition_penalty(x, hist, pen, eos)
    if params.top_p is not None:
        x = top_p_filter(x, params.top_p)
    if params.top_k is not None:
        x = top_k_filter(x, params.top_k)
    steps = hist.shape[1]
    if steps < params.min_new_tokens or (steps == 0 and params.manual_seed is None):
        x[:, eos] = _NEG_INF  # x is this function's own array (made by the division at least)
    return x


class Sampler:
    """One row's sampler: :func:`process`, :func:`softmax`, then an inverse-CDF draw per
    codebook on this row's own ``PCG64`` generator (reset to ``manual_seed`` before every draw
    when there is one; seeded from the OS otherwise)."""

    def __init__(self, params: SamplingParams, eos: int) -> None:
        _check(params)
        self.params = params
        self.eos = int(eos)
        seed = params.manual_seed
        self._bits = np.random.PCG64(seed)
        self._rng = np.random.Generator(self._bits)
        self._start = None if seed is None else self._bits.state

    def probabilities(self, logits: npt.ArrayLike, history: npt.ArrayLike) -> np.ndarray:
        """The softmax the torch engine samples from: [num_vq, audio_tokens] float32."""
        return softmax(process(logits, history, self.params, self.eos))

    def sample(self, logits: npt.ArrayLike, history: npt.ArrayLike) -> np.ndarray:
        """The next tokens [num_vq] (int64) for this row."""
        return self.draw(self.probabilities(logits, history))

    def draw(self, probs: np.ndarray) -> np.ndarray:
        """One token per row of ``probs`` [rows, tokens] (non-negative, any positive sum),
        with probability proportional to its value."""
        if self._start is not None:
            self._bits.state = self._start  # == re-seeding with manual_seed
        cdf = np.cumsum(probs, axis=-1, dtype=np.float64)
        total = cdf[:, -1]
        if not (np.isfinite(total).all() and (total > 0).all() and (probs >= 0).all()):
            raise ValueError("invalid probabilities: a row sums to 0, or holds NaN/inf/negatives")
        target = self._rng.random(probs.shape[0]) * total
        ids = (cdf <= target[:, None]).sum(axis=-1)
        over = ids >= probs.shape[-1]  # u * total rounded up to total: the last possible token
        for r in np.flatnonzero(over):
            ids[r] = np.flatnonzero(probs[r] > 0)[-1]
        return ids.astype(np.int64)


def sample_batch(
    samplers: Sequence[Sampler], logits: npt.ArrayLike, histories: Sequence[npt.ArrayLike]
) -> np.ndarray:
    """Each row's next tokens: ``logits`` [rows, num_vq, audio_tokens], one sampler and one
    history [num_vq, steps] per row; [rows, num_vq] int64. Rows are independent (each its own
    parameters and generator), processed one after another."""
    arr = np.asarray(logits)
    if arr.ndim != 3 or arr.shape[0] != len(samplers) or len(histories) != len(samplers):
        raise ValueError("need one sampler and one history per row of logits [rows, vq, tokens]")
    out = np.empty(arr.shape[:2], np.int64)
    for i, (sampler, history) in enumerate(zip(samplers, histories, strict=True)):
        out[i] = sampler.sample(arr[i], history)
    return out
