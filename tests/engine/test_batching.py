"""Continuous batching through the real ChatTTS modules (tiny model): the step model against
the transformers forward, tokens against ChatTTS's own loop, rows independent of their batch,
requests joining and leaving between steps, per-row cancellation and failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from chattts_server.engine import ChatTTSEngine, SynthesisRequest
from chattts_server.engine.batching import Generation, Sampling
from chattts_server.engine.torch_step import KVCache, PackedLinear, packing_available

TEXT = "Hello batching world."


def prompt(engine: ChatTTSEngine, seed: int = 1, text: str = TEXT) -> torch.Tensor:
    p = engine._prepare(SynthesisRequest(text=text, seed=seed))
    with torch.inference_mode():
        return engine._prompt(p.segments[0].text, p, None, None)


def sampling(n: int = 24, seed: int | None = 5, **kw: Any) -> Sampling:
    return Sampling(min_new_tokens=n, max_new_tokens=n, manual_seed=seed, **kw)


def finish(gen: Generation) -> torch.Tensor:
    *_, (hidden, final) = gen.updates(None)
    assert final
    return hidden.clone()


@pytest.fixture
def steps(engine: ChatTTSEngine) -> Iterator[list[int]]:
    """Rows in each batcher step while the test runs."""
    assert engine.batcher is not None
    rows: list[int] = []

    def record(n: int, _: float) -> None:
        rows.append(n)

    engine.batcher.listeners.append(record)
    yield rows
    engine.batcher.listeners.remove(record)


def test_step_model_matches_the_transformers_forward(engine: ChatTTSEngine) -> None:
    assert engine.batcher is not None
    assert engine.parts is not None
    step, llama = engine.parts.step_model, engine._chat.gpt.gpt
    emb = prompt(engine)
    x = torch.randn(1, emb.shape[1], generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = llama(inputs_embeds=emb[None], use_cache=True)
        nxt = llama(
            inputs_embeds=x[None],
            past_key_values=ref.past_key_values,
            use_cache=True,
            cache_position=torch.tensor([emb.shape[0]]),
        )
        cache = step.new_cache(4)  # grows on the way
        ours = step.forward(emb, [(cache, emb.shape[0])])
        ours_next = step.forward(x, [(cache, 1)])
    assert cache.length == emb.shape[0] + 1
    torch.testing.assert_close(ours, ref.last_hidden_state[0].float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_next, nxt.last_hidden_state[0].float(), atol=1e-5, rtol=1e-5)


def test_tokens_match_chattts_own_loop(engine: ChatTTSEngine) -> None:
    """Same prompt, same manual seed: ChatTTS's ``_infer_code`` and the batcher sample the same
    tokens (ChatTTS re-seeds its generator every step; so does each row)."""
    import ChatTTS

    chat = engine._chat
    p = engine._prepare(SynthesisRequest(text=TEXT, seed=1))
    n = 40
    params = ChatTTS.Chat.InferCodeParams(
        prompt="[speed_5]",
        spk_emb=p.voice.spk_emb,
        max_new_token=n,
        min_new_token=n,
        manual_seed=5,
        show_tqdm=False,
    )
    with torch.inference_mode():
        stock = list(chat._infer_code([p.segments[0].text], False, chat.device, True, params))[-1]
    assert engine.batcher is not None
    gen = engine.batcher.enqueue(Generation(prompt(engine), sampling(n)))
    hidden = finish(gen)
    assert torch.equal(torch.from_numpy(gen.ids.T), stock.ids[0])
    torch.testing.assert_close(hidden, stock.hiddens[0], atol=1e-4, rtol=1e-4)


def test_a_row_does_not_depend_on_its_batch(engine: ChatTTSEngine, steps: list[int]) -> None:
    assert engine.batcher is not None
    b = engine.batcher
    specs = [
        (prompt(engine, 1), sampling(24, seed=5)),
        (prompt(engine, 2, "Another one, longer than the first."), sampling(20, seed=6, top_k=5)),
        (prompt(engine, 3, "短一点。"), sampling(16, seed=7, temperature=0.9, top_p=0.9)),
    ]
    alone = []
    for emb, s in specs:
        gen = b.enqueue(Generation(emb, s))
        alone.append((finish(gen), gen.ids))
    steps.clear()
    gens = [Generation(emb, s) for emb, s in specs]
    b.enqueue_all(gens)  # queued together: they join the same step
    together = [(finish(g), g.ids) for g in gens]
    assert max(steps) == 3
    for (h1, ids1), (h2, ids2) in zip(alone, together, strict=True):
        assert np.array_equal(ids1, ids2)
        if engine.packed:  # oneDNN rows are computed independently: bit for bit
            assert torch.equal(h1, h2)
        else:
            torch.testing.assert_close(h1, h2, atol=1e-5, rtol=1e-5)


def test_requests_join_and_leave_between_steps(engine: ChatTTSEngine, steps: list[int]) -> None:
    assert engine.batcher is not None
    b = engine.batcher
    emb_a, emb_b = prompt(engine, 1), prompt(engine, 2)
    solo_b = finish(b.enqueue(Generation(emb_b, sampling(10))))
    steps.clear()
    late = Generation(emb_b, sampling(10))
    joined = threading.Event()

    def join(_: int, __: float) -> None:
        if len(steps) == 5 and not joined.is_set():
            joined.set()
            b.enqueue(late)  # from the batcher thread itself, between two steps

    b.listeners.append(join)
    try:
        first = b.enqueue(Generation(emb_a, sampling(30)))
        finish(first)
        hidden_b = finish(late)
    finally:
        b.listeners.remove(join)
    assert first.count == 30 and late.count == 10
    assert 2 in steps and steps[-1] == 1  # shared steps, then A alone again after B left
    assert len(steps) < 30 + 10  # B's tokens rode along A's steps
    assert torch.equal(hidden_b, solo_b) or not engine.packed


def test_cancelling_one_row_leaves_the_others_running(engine: ChatTTSEngine) -> None:
    assert engine.batcher is not None
    b = engine.batcher
    flag = threading.Event()
    keep = Generation(prompt(engine, 1), sampling(24))
    drop = Generation(prompt(engine, 2), sampling(24), cancelled=flag.is_set)

    def cancel(_: int, __: float) -> None:
        if drop.count >= 5:
            flag.set()

    b.listeners.append(cancel)
    try:
        b.enqueue(keep), b.enqueue(drop)
        finish(keep), finish(drop)
    finally:
        b.listeners.remove(cancel)
    assert drop.finish_reason == "cancelled" and 5 <= drop.count <= 6
    assert keep.finish_reason == "length" and keep.count == 24


def test_a_failed_step_fails_its_rows_and_the_batcher_goes_on(
    engine: ChatTTSEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine.batcher is not None
    b = engine.batcher
    assert engine.parts is not None
    real = engine.parts.step_model.forward
    calls = 0

    def flaky(*args: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(engine.parts.step_model, "forward", flaky)
    gen = b.enqueue(Generation(prompt(engine), sampling(10)))
    with pytest.raises(RuntimeError, match="boom"):
        finish(gen)
    assert gen.finish_reason == "error"
    again = b.enqueue(Generation(prompt(engine), sampling(10)))
    assert finish(again).shape[0] == 10


def test_the_batch_never_exceeds_max_batch(engine: ChatTTSEngine, steps: list[int]) -> None:
    assert engine.batcher is not None
    b = engine.batcher
    gens = [b.enqueue(Generation(prompt(engine, i), sampling(8))) for i in range(b.max_batch + 2)]
    for g in gens:
        finish(g)
    assert all(g.count == 8 for g in gens)
    assert max(steps) <= b.max_batch


def test_concurrent_syntheses_equal_sequential_ones(engine: ChatTTSEngine) -> None:
    """Two requests on two threads, batched together, give the audio each gives alone."""
    reqs = [
        SynthesisRequest(text="First voice here.", seed=4, manual_seed=1, max_new_tokens=24),
        SynthesisRequest(text="第二个声音。", seed=9, manual_seed=2, max_new_tokens=24),
    ]

    def run(r: SynthesisRequest) -> np.ndarray:
        return np.concatenate([c.pcm for c in engine.synthesize(r)])

    alone = [run(r) for r in reqs]
    out: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda i=i: out.__setitem__(i, run(reqs[i]))) for i in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in (0, 1):
        if engine.packed:
            assert np.array_equal(out[i], alone[i])
        else:
            np.testing.assert_allclose(out[i], alone[i], atol=1e-4)


def test_kv_cache_keeps_its_contents_when_it_grows() -> None:
    cache = KVCache(2, 3, 4, capacity=2, dtype=torch.float32, device="cpu")
    first = torch.randn(3, 2, 4)
    cache.append(0, first, first + 1)
    cache.length = 2
    more = torch.randn(3, 5, 4)
    k, v = cache.append(0, more, more + 1)
    assert k.shape == (3, 7, 4) and cache.k[0].shape[1] >= 7
    assert torch.equal(k[:, :2], first) and torch.equal(k[:, 2:], more)
    assert torch.equal(v, k + 1)


@pytest.mark.skipif(not packing_available(), reason="no oneDNN packed linear in this torch")
def test_packed_linear_matches_linear_and_rows_are_independent() -> None:
    lin = torch.nn.Linear(96, 80)
    x = torch.randn(7, 96)
    with torch.inference_mode():
        packed = PackedLinear(lin)
        y = packed(x)
        torch.testing.assert_close(y, lin(x), atol=1e-5, rtol=1e-5)
        for n in (1, 2, 3, 5):
            assert torch.equal(packed(x[:n]), y[:n])
        assert packed(x.view(7, 1, 96)).shape == (7, 1, 80)


def test_model_work_runs_on_the_torch_thread(
    engine: ChatTTSEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding and reference encoding run on the torch thread, not the caller's (a second
    thread with OpenMP workers slows every GPT step on a small CPU)."""
    import io

    import soundfile as sf

    chat = engine._chat
    seen: list[tuple[str, str]] = []

    def spy(kind: str, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            seen.append((kind, threading.current_thread().name))
            return fn(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(chat, "_decode_to_wavs", spy("decode", chat._decode_to_wavs))
    monkeypatch.setattr(chat, "sample_audio_speaker", spy("encode", chat.sample_audio_speaker))
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, np.float32) + 0.01, 16000, format="WAV")
    req = SynthesisRequest(text=TEXT, ref_audio=buf.getvalue(), ref_text="参考", incremental=True,
                           max_new_tokens=24)  # fmt: skip
    assert np.concatenate([c.pcm for c in engine.synthesize(req)]).size > 0
    assert engine.encode_reference(buf.getvalue())
    assert {kind for kind, _ in seen} == {"decode", "encode"}
    assert {name for _, name in seen} == {"chattts-torch"}, seen


def test_unpacked_weights_give_the_same_tokens(engine: ChatTTSEngine, tiny_model_dir: Any) -> None:
    """``pack_weights=False`` (torch's default kernels, the path where oneDNN is missing)
    samples the same tokens as the packed engine; the audio differs by float rounding only."""
    from chattts_server.engine import EngineConfig

    plain = ChatTTSEngine(
        EngineConfig(model_dir=str(tiny_model_dir), max_new_tokens=48, pack_weights=False)
    )
    plain.load()
    try:
        assert not plain.packed
        req = SynthesisRequest(text=TEXT, seed=1, manual_seed=5, max_new_tokens=32)
        a = engine.synthesize(req)
        b = plain.synthesize(req)
        wa = np.concatenate([c.pcm for c in a])
        wb = np.concatenate([c.pcm for c in b])
        assert a.stats.tokens == b.stats.tokens and wa.size == wb.size
        np.testing.assert_allclose(wa, wb, atol=1e-3)
    finally:
        plain.close()
