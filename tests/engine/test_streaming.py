"""Incremental streaming through the real ChatTTS code (tiny model): early first audio, no
re-decoding of the prefix, pieces that join into the one-shot decode within a stated bound.

The tiny model's decoders have ChatTTS's full depth and trained-like layer scales
(``engine/testmodel.py``): with the initialisation's scales every boundary looked exact, which
hid a 16%-of-RMS click at each chunk boundary with 8 tokens of lookahead."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from chattts_server.engine import ChatTTSEngine, EngineConfig, SynthesisRequest
from chattts_server.engine.stream import WindowDecoder

REQ = {"text": "Hello world, a streaming test.", "seed": 2, "manual_seed": 3,
       "max_new_tokens": 48, "min_new_tokens": 48}  # fmt: skip
# max |streamed − one-shot| as a share of the one-shot RMS: 0.2% ≈ −54 dB, inaudible
BOUND = 0.002
TEXTS = {
    "short": "Hi.",
    "sentence": "Hello world, a streaming test.",
    "two segments": "The first sentence is here. 第二句话在这里，稍微长一点。",
}


def boundary_error(engine: ChatTTSEngine, text: str, tokens: int) -> float:
    req = SynthesisRequest(text, seed=2, manual_seed=3, min_new_tokens=tokens,
                           max_new_tokens=tokens)  # fmt: skip
    one = np.concatenate([c.pcm for c in engine.synthesize(req)])
    pieces = [c.pcm for c in engine.synthesize(replace(req, incremental=True))]
    inc = np.concatenate(pieces)
    assert inc.size == one.size  # no gaps, no repeats
    assert len(pieces) >= 3  # several boundaries (and the pause between segments)
    return float(np.max(np.abs(inc - one)) / np.sqrt(np.mean(one.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def engines(tiny_model_dir: Path) -> Iterator[dict[tuple[int, int], ChatTTSEngine]]:
    """Engines by (chunk tokens, lookahead tokens), loaded on first use."""
    made: dict[tuple[int, int], ChatTTSEngine] = {}

    class Engines(dict[tuple[int, int], ChatTTSEngine]):
        def __missing__(self, key: tuple[int, int]) -> ChatTTSEngine:
            chunk, lookahead = key
            cfg = replace(EngineConfig(model_dir=str(tiny_model_dir), warmup=False),
                          stream_chunk_tokens=chunk)  # fmt: skip
            if lookahead:
                cfg = replace(cfg, stream_lookahead_tokens=lookahead)
            eng = made[key] = ChatTTSEngine(cfg)
            eng.load()
            return eng

    yield Engines()
    for eng in made.values():
        eng.close()


@pytest.mark.parametrize("tokens", [40, 150])
@pytest.mark.parametrize("text", list(TEXTS))
@pytest.mark.parametrize("chunk", [4, 16, 64])
def test_streamed_samples_equal_one_shot_within_the_bound(
    engines: dict[tuple[int, int], ChatTTSEngine], chunk: int, text: str, tokens: int
) -> None:
    """The guard: with the engine's default lookahead every chunk boundary stays within 0.2%
    of the RMS of a one-shot decode of the same tokens (the left edge is exact)."""
    assert boundary_error(engines[chunk, 0], TEXTS[text], tokens) <= BOUND


def test_the_guard_fails_with_the_old_lookahead(
    engines: dict[tuple[int, int], ChatTTSEngine],
) -> None:
    """8 tokens of lookahead (the default until trained-like test models showed the click):
    the boundary error is far over the bound, so the guard above can fail."""
    err = boundary_error(engines[64, 8], TEXTS["sentence"], 97)
    assert err > 10 * BOUND


def test_incremental_audio_matches_one_shot(engine: ChatTTSEngine) -> None:
    """The shared engine (default settings): several pieces, no gaps or repeats, within the
    bound. (When the first piece leaves is the decoder's schedule, tested below without a
    clock; time to first audio is a benchmark figure, bench/results/speed.md.)"""
    assert boundary_error(engine, REQ["text"], 48) <= BOUND  # type: ignore[arg-type]


def test_window_decoder_emits_once_first_plus_lookahead_tokens_exist(
    engine: ChatTTSEngine,
) -> None:
    """The first audio needs ``first`` tokens plus ``lookahead`` (20 GPT steps, stock ChatTTS
    72); then chunks double up to ``chunk``; the GPT's reader is woken exactly then."""
    cfg = engine.config
    dec = WindowDecoder(lambda h: np.zeros(512 * len(h) - 256, np.float32),
                        first=cfg.stream_first_tokens, chunk=cfg.stream_chunk_tokens,
                        context=cfg.stream_context_tokens,
                        lookahead=cfg.stream_lookahead_tokens)  # fmt: skip
    hidden = np.zeros((400, 4), np.float32)
    emitted, wanted = [], []
    for t in range(1, 401):
        wants = dec.wants()
        pieces = list(dec.push(hidden[:t]))
        assert bool(pieces) == (t == wants)  # a piece exactly when the decoder said it would
        wanted += [wants] * bool(pieces)
        emitted += [(t, len(p) // 512) for p in pieces]
    assert emitted[0] == (cfg.stream_first_tokens + cfg.stream_lookahead_tokens,
                          cfg.stream_first_tokens) == (20, 1)  # fmt: skip
    sizes = [n for _, n in emitted]
    assert sizes[:7] == [1, 2, 4, 8, 16, 32, 64] and max(sizes) == cfg.stream_chunk_tokens


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
