"""Incremental streaming through the real ChatTTS code (tiny model): early first audio, no
re-decoding of the prefix, pieces that join into (almost exactly) the one-shot decode."""

from __future__ import annotations

import time

import numpy as np
import pytest

from chattts_server.engine import ChatTTSEngine, EngineConfig, SynthesisRequest
from chattts_server.engine.stream import WindowDecoder

REQ = {"text": "Hello world, a streaming test.", "seed": 2, "manual_seed": 3,
       "max_new_tokens": 48, "min_new_tokens": 48}  # fmt: skip


def test_incremental_audio_starts_early_and_matches_one_shot(engine: ChatTTSEngine) -> None:
    steps = 0
    first_at = None

    def count(*_: object) -> None:  # a slow producer: the GPT must not run far ahead
        nonlocal steps
        steps += 1
        time.sleep(0.02)

    one = np.concatenate([c.pcm for c in engine.synthesize(SynthesisRequest(**REQ))])
    assert engine.batcher is not None
    engine.batcher.listeners.append(count)
    try:
        pieces = []
        for chunk in engine.synthesize(SynthesisRequest(**REQ, incremental=True)):
            if first_at is None:
                first_at = steps
            pieces.append(chunk.pcm)
    finally:
        engine.batcher.listeners.remove(count)
    cfg = engine.config
    # first audio after first + lookahead GPT steps (rounded up to the hand-over interval,
    # plus slack for the reader waking up late on a busy machine)
    assert first_at is not None
    assert (
        first_at
        <= cfg.stream_first_tokens + cfg.stream_lookahead_tokens + cfg.stream_step_tokens + 4
    )
    assert len(pieces) >= 3
    inc = np.concatenate(pieces)
    assert inc.size == one.size  # no gaps, no repeats
    # stated bound: with 8 tokens of lookahead the tiny model's boundary error is float noise
    assert np.max(np.abs(inc - one)) < 1e-5


def test_window_decoder_never_redecodes_the_prefix() -> None:
    seen: list[int] = []

    def decode(hidden: np.ndarray) -> np.ndarray:
        seen.append(len(hidden))
        return np.zeros(512 * len(hidden) - 256, np.float32)

    dec = WindowDecoder(decode, first=4, chunk=64, context=24, lookahead=8)
    hidden = np.zeros((2000, 4), np.float32)
    out = []
    for t in range(4, 2001, 4):
        out += list(dec.push(hidden[:t]))
    out += list(dec.push(hidden, final=True))
    assert sum(len(o) for o in out) == 512 * 2000 - 256
    assert max(seen) <= 24 + 64 + 8 + 4  # bounded window: cost is linear in the length
    assert sum(seen) < 1.6 * 2000  # the overlap decoded twice is a small share of the work


def test_frozen_weight_norm_gives_identical_audio(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    outs = []
    for freeze in (False, True):
        eng = ChatTTSEngine(EngineConfig(model_dir=str(tiny_model_dir), warmup=False,
                                         precompute_weight_norm=freeze))  # fmt: skip
        eng.load()
        outs.append(np.concatenate([c.pcm for c in eng.synthesize(SynthesisRequest(**REQ))]))
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_reduced_precision_runs_and_reports_agreement(tiny_model_dir, dtype: str) -> None:  # type: ignore[no-untyped-def]
    """bf16 GPT: same length, audio close to fp32 (random weights diverge; the bench states the
    token agreement on the full-size model)."""
    eng = ChatTTSEngine(EngineConfig(model_dir=str(tiny_model_dir), warmup=False,
                                     gpt_dtype=dtype))  # type: ignore[arg-type]  # fmt: skip
    eng.load()
    pcm = np.concatenate([c.pcm for c in eng.synthesize(SynthesisRequest(**REQ))])
    assert pcm.size == 512 * 48 - 256 and np.all(np.isfinite(pcm))
