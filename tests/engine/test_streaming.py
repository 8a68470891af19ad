"""Incremental streaming through the real ChatTTS code (tiny model): early first audio, no
re-decoding of the prefix, pieces that join into (almost exactly) the one-shot decode."""

from __future__ import annotations

import numpy as np
import pytest

from chattts_server.engine import ChatTTSEngine, EngineConfig, SynthesisRequest
from chattts_server.engine.stream import WindowDecoder

REQ = {"text": "Hello world, a streaming test.", "seed": 2, "manual_seed": 3,
       "max_new_tokens": 48, "min_new_tokens": 48}  # fmt: skip


def test_incremental_audio_matches_one_shot(engine: ChatTTSEngine) -> None:
    """Through the real ChatTTS code: several pieces, no gaps or repeats, float-noise error.
    (When the first piece leaves is the decoder's schedule, tested below without a clock;
    time to first audio is a benchmark figure, bench/results/speed.md.)"""
    one = np.concatenate([c.pcm for c in engine.synthesize(SynthesisRequest(**REQ))])
    pieces = [c.pcm for c in engine.synthesize(SynthesisRequest(**REQ, incremental=True))]
    assert len(pieces) >= 3
    inc = np.concatenate(pieces)
    assert inc.size == one.size  # no gaps, no repeats
    # stated bound: with 8 tokens of lookahead the tiny model's boundary error is float noise
    assert np.max(np.abs(inc - one)) < 1e-5


def test_window_decoder_emits_once_first_plus_lookahead_tokens_exist(
    engine: ChatTTSEngine,
) -> None:
    """The first audio needs ``first`` tokens plus ``lookahead`` (12 GPT steps, stock ChatTTS
    72); then chunks double up to ``chunk``."""
    cfg = engine.config
    dec = WindowDecoder(lambda h: np.zeros(512 * len(h) - 256, np.float32),
                        first=cfg.stream_first_tokens, chunk=cfg.stream_chunk_tokens,
                        context=cfg.stream_context_tokens,
                        lookahead=cfg.stream_lookahead_tokens)  # fmt: skip
    hidden = np.zeros((400, 4), np.float32)
    emitted = []
    for t in range(1, 401):
        for piece in dec.push(hidden[:t]):
            emitted.append((t, len(piece) // 512))
    assert emitted[0] == (cfg.stream_first_tokens + cfg.stream_lookahead_tokens,
                          cfg.stream_first_tokens)  # fmt: skip
    sizes = [n for _, n in emitted]
    assert sizes[:5] == [4, 8, 16, 32, 64] and max(sizes) == cfg.stream_chunk_tokens


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
