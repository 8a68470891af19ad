"""The ONNX engine against the PyTorch engine on the same weights (the tiny model and its fp32
export): logits, greedy tokens, decoded audio, voices, reference clips; then the engine's own
behaviour — streaming, determinism, batching, cancellation — and that it never needs torch."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from chattts_server.engine import ChatTTSEngine, SynthesisRequest
from chattts_server.engine.batching import Generation, Sampling
from chattts_server.engine.errors import InvalidInputError, SynthesisCancelledError
from streamtool import assert_stream_matches

TEXT = "Hello from the other engine. 第二句话。"


def prompt(engine: Any, text: str = "Hello batching world.", seed: int = 1) -> Any:
    p = engine._prepare(SynthesisRequest(text=text, seed=seed))
    return engine.batcher.call(engine._in_session, engine._prompt, p.segments[0].text, p, None,
                               None)  # fmt: skip


def run_tokens(engine: Any, emb: Any, tokens: np.ndarray | None, steps: int) -> tuple[Any, Any]:
    """Prefill ``emb``, then ``steps`` steps: with ``tokens`` given, those are fed (teacher
    forcing); else each step's argmax per codebook (greedy). Returns every step's logits
    [steps + 1, vq, n] and the fed tokens [steps, vq]."""
    parts = engine.parts

    def run() -> tuple[np.ndarray, np.ndarray]:
        gen = Generation(emb, Sampling(max_new_tokens=steps + 1))
        row = parts.new_row(gen)
        with parts.session():
            _, logits = parts.prefill(row, emb)
            out = [np.asarray(logits[0], np.float32)]
            fed = []
            for i in range(steps):
                nxt = tokens[i] if tokens is not None else out[-1].argmax(-1)
                fed.append(nxt)
                _, logits = parts.step([row], np.asarray(nxt, np.int64)[None])
                out.append(np.asarray(logits[0], np.float32))
        return np.stack(out), np.stack(fed)

    return engine.batcher.call(run)


def test_the_export_names_its_source_and_files(onnx_model_dir: Path, engine: ChatTTSEngine) -> None:
    manifest = json.loads((onnx_model_dir / "manifest.json").read_text())
    assert manifest["format"] == "chattts-server-onnx" and manifest["weights"] == "fp32"
    assert engine.info.model is not None
    assert manifest["source"]["fingerprint"] == engine.info.model.fingerprint
    for name, entry in manifest["files"].items():
        assert (onnx_model_dir / name).stat().st_size == entry["bytes"]
    assert {"gpt.onnx", "decoder.onnx", "encoder.onnx", "tokenizer.json"} <= set(manifest["files"])


def test_teacher_forced_logits_match_torch(engine: ChatTTSEngine, onnx_engine: Any) -> None:
    rng = np.random.default_rng(0)
    n = engine._voice_model().num_audio_tokens - 1  # never the end token
    tokens = rng.integers(0, n, size=(200, 4))
    ref, _ = run_tokens(engine, prompt(engine), tokens, 200)
    got, _ = run_tokens(onnx_engine, prompt(onnx_engine), tokens, 200)
    assert ref.shape == got.shape == (201, 4, n + 1)
    assert float(np.abs(ref - got).max()) <= 1e-4


def test_greedy_tokens_are_identical_over_200_steps(
    engine: ChatTTSEngine, onnx_engine: Any
) -> None:
    _, ref = run_tokens(engine, prompt(engine, "Greedy decoding, two engines.", 3), None, 200)
    _, got = run_tokens(onnx_engine, prompt(onnx_engine, "Greedy decoding, two engines.", 3),
                        None, 200)  # fmt: skip
    assert np.array_equal(ref, got)


def test_the_prompt_is_the_same(engine: ChatTTSEngine, onnx_engine: Any) -> None:
    for text, seed in (("Hello there.", 1), ("你好，世界。", 5)):
        a = prompt(engine, text, seed).numpy()
        b = prompt(onnx_engine, text, seed)
        assert a.shape == b.shape and float(np.abs(a - b).max()) <= 1e-6


def test_decoded_audio_matches_torch(engine: ChatTTSEngine, onnx_engine: Any) -> None:
    size = int(engine._chat.config.gpt.hidden_size)
    hidden = torch.randn(40, size, generator=torch.Generator().manual_seed(0))
    ref = engine.batcher.call(engine._in_session, engine._decode, hidden)
    got = onnx_engine.batcher.call(onnx_engine._decode, hidden.numpy())
    assert ref.shape == got.shape == (40 * 512 - 256,)
    assert float(np.abs(ref - got).max()) <= 1e-4


@pytest.mark.parametrize("seed", [0, 1, 7, 4242, 2**31 + 5, 2**32 - 1])
def test_a_seed_is_the_same_voice_on_both_engines(
    engine: ChatTTSEngine, onnx_engine: Any, seed: int
) -> None:
    assert onnx_engine.speaker_for_seed(seed) == engine.speaker_for_seed(seed)


def test_a_reference_clip_encodes_to_the_same_tokens(
    engine: ChatTTSEngine, onnx_engine: Any
) -> None:
    import io

    import soundfile as sf

    t = np.arange(24000 * 2) / 24000
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, clip, 24000, format="WAV")
    a = engine.encode_reference(buf.getvalue())
    b = onnx_engine.encode_reference(buf.getvalue())
    assert onnx_engine.check_reference_tokens(a) == a
    from chattts_server.engine.speakers import decode_prompt

    ta, tb = decode_prompt(a), decode_prompt(b)
    assert ta.shape == tb.shape
    assert np.mean(ta == tb) >= 0.99  # FSQ rounds at bin edges: float noise may flip a few


def synth(engine: Any, **kw: Any) -> tuple[np.ndarray, Any]:
    req = SynthesisRequest(**{"text": TEXT, "seed": 2, "manual_seed": 4, **kw})
    s = engine.synthesize(req)
    pcm = [c.pcm for c in s]
    return np.concatenate(pcm), s.stats


def test_a_fixed_manual_seed_is_deterministic(onnx_engine: Any) -> None:
    a, stats = synth(onnx_engine)
    b, _ = synth(onnx_engine)
    assert a.size > 0 and stats.segments_done == 2
    assert np.array_equal(a, b)
    assert not np.array_equal(a, synth(onnx_engine, manual_seed=5)[0])


def test_streamed_audio_matches_the_whole(onnx_engine: Any) -> None:
    whole, _ = synth(onnx_engine, max_new_tokens=48, min_new_tokens=48)
    streamed, _ = synth(onnx_engine, max_new_tokens=48, min_new_tokens=48, incremental=True)
    to16 = lambda x: np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")  # noqa: E731
    assert_stream_matches(to16(streamed), to16(whole))


def test_rows_queued_together_share_steps_and_keep_their_solo_tokens(onnx_engine: Any) -> None:
    """Three generations queued at once join the same step; each samples the tokens it samples
    alone, and its hidden states differ from its solo run by float rounding only."""
    texts = ["First voice here.", "第二个声音。", "A third, longer request than the others."]
    lengths = (24, 20, 30)
    specs = [
        (prompt(onnx_engine, t, i + 2), Sampling(min_new_tokens=n, max_new_tokens=n, manual_seed=i))
        for i, (t, n) in enumerate(zip(texts, lengths, strict=True))
    ]

    def finish(gen: Generation) -> np.ndarray:
        *_, (hidden, final) = gen.updates(None)
        assert final
        return np.array(hidden)

    b = onnx_engine.batcher
    alone = []
    for emb, s in specs:
        gen = b.enqueue(Generation(emb, s, parts=onnx_engine.parts))
        alone.append((finish(gen), gen.ids))
    rows: list[int] = []
    listener = lambda n, _: rows.append(n)  # noqa: E731
    onnx_engine.add_step_listener(listener)
    try:
        gens = [Generation(emb, s, parts=onnx_engine.parts) for emb, s in specs]
        b.enqueue_all(gens)  # queued together: they join the same step
        together = [(finish(g), g.ids) for g in gens]
    finally:
        onnx_engine.remove_step_listener(listener)
    assert max(rows) == 3
    for (h1, ids1), (h2, ids2) in zip(alone, together, strict=True):
        assert np.array_equal(ids1, ids2)
        assert float(np.abs(h1 - h2).max()) <= 1e-4


def test_cancel_stops_within_a_step(onnx_engine: Any) -> None:
    seen = threading.Event()
    s = onnx_engine.synthesize(
        SynthesisRequest(text="Hello.", seed=1, max_new_tokens=48, min_new_tokens=48,
                         incremental=True)
    )  # fmt: skip
    steps: list[int] = []

    def on_step(n: int, _: float) -> None:
        steps.append(n)
        if len(steps) == 25:
            s.cancel()
            seen.set()

    onnx_engine.add_step_listener(on_step)
    try:
        with pytest.raises(SynthesisCancelledError):
            for _ in s:
                pass
    finally:
        onnx_engine.remove_step_listener(on_step)
    assert seen.is_set() and s.stats.cancelled
    assert len(steps) <= 26


def test_refine_text_is_refused_on_the_onnx_engine(onnx_engine: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        onnx_engine.synthesize(SynthesisRequest(text="Hello.", refine_text=True))
    assert (info.value.code, info.value.field) == ("unsupported", "refine_text")


def test_the_onnx_engine_runs_with_torch_blocked(onnx_model_dir: Path) -> None:
    """No torch, transformers or ChatTTS in the process: blocked imports fail loudly."""
    code = f"""
import sys
for name in ("torch", "transformers", "ChatTTS", "torchaudio", "vocos", "numba"):
    sys.modules[name] = None
import io
import numpy as np
import soundfile as sf
from chattts_server.engine import EngineConfig, SynthesisRequest, create_engine
from chattts_server.server import create_app
eng = create_engine(EngineConfig(engine="onnx", onnx_dir={str(onnx_model_dir)!r},
                                 max_new_tokens=16))
eng.load()
pcm = [c.pcm for c in eng.synthesize(SynthesisRequest(text="Hello.", seed=1, manual_seed=1,
                                                       incremental=True))]
buf = io.BytesIO()
sf.write(buf, np.sin(np.arange(48000) / 20).astype(np.float32) * 0.3, 24000, format="WAV")
assert eng.check_reference_tokens(eng.encode_reference(buf.getvalue()))
print(sum(p.size for p in pcm), eng.speaker_for_seed(3)[:8], callable(create_app))
eng.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    samples = int(out.stdout.split()[0])
    assert samples > 0


@pytest.mark.parametrize("which", ["torch", "onnx"])
def test_bad_voices_are_400s_naming_the_field(
    engine: ChatTTSEngine, onnx_engine: Any, which: str
) -> None:
    """On both engines: an all-zero speaker vector (NaN once normalized), a speaker string that
    expands beyond any real one (an LZMA bomb), and clip tokens longer than the longest clip
    allowed are refused up front with the field's code, never a 500 later."""
    import lzma

    import pybase16384 as b14

    from chattts_server.engine.speakers import decode_spk_emb, encode_prompt, encode_spk_emb

    eng = engine if which == "torch" else onnx_engine
    dim = eng._voice_model().speaker.dim
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    bomb = b14.encode_to_string(lzma.compress(bytes(64 << 20), format=lzma.FORMAT_RAW,
                                              filters=filters))  # fmt: skip
    with pytest.raises(ValueError, match="expands beyond"):  # never inflated in memory
        decode_spk_emb(bomb)
    for spk in (encode_spk_emb(np.zeros(dim, np.float16)), bomb):
        with pytest.raises(InvalidInputError) as info:
            eng.synthesize(SynthesisRequest(text="Hello.", spk_emb=spk))
        assert (info.value.code, info.value.field) == ("invalid_spk_emb", "spk_emb")
    longest = int(eng.config.max_ref_audio_seconds * 24000 / 512) + 8
    for n, ok in ((longest, True), (longest + 1, False)):
        tokens = encode_prompt(np.ones((4, n), np.int64))
        request = SynthesisRequest(text="Hello.", ref_tokens=tokens, ref_text="你好")
        if ok:
            assert eng.check_reference_tokens(tokens) == tokens
            continue
        with pytest.raises(InvalidInputError) as info:
            eng.synthesize(request)
        assert (info.value.code, info.value.field) == ("invalid_ref_tokens", "ref_tokens")
