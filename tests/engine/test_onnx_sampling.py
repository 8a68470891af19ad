"""The numpy sampling against ChatTTS's torch processors as the torch engine applies them:
thousands of random and adversarial rows (ties, peaked logits, -inf entries, repeats in the
history), the engine's own sampling method, the draw's determinism and distribution, speed;
and the three torch-free modules importing without torch, transformers, ChatTTS or numba."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from chattts_server.engine.onnx.sampling import (
    Sampler,
    process,
    repetition_penalty,
    sample_batch,
    softmax,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
gen_logits = pytest.importorskip("ChatTTS.model.processors").gen_logits

VQ, TOKENS, EOS = 4, 626, 625  # the real model's shapes: eos = num_audio_tokens - 1


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """These tensors are far below torch's parallel grain size; one thread avoids OpenMP
    spin-waits on a shared machine (the first test took 15 s instead of 2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class S:
    """The engine's ``Sampling`` fields that sampling reads (a frozen stand-in)."""

    temperature: float = 0.3
    top_p: float | None = 0.7
    top_k: int | None = 20
    repetition_penalty: float = 1.05
    min_new_tokens: int = 0
    manual_seed: int | None = None


def reference(logits: np.ndarray, history: np.ndarray, s: Any, eos: int) -> np.ndarray:
    """The torch engine's sampling up to its softmax (``TorchGPT.sample``): ChatTTS's
    processors from ``gen_logits(eos, ...)``, procs then warpers, then the end-token rule."""
    warpers, procs = gen_logits(eos, s.top_p, s.top_k, s.repetition_penalty)
    x = torch.from_numpy(logits).float() / s.temperature
    ids = torch.as_tensor(history)
    for proc in [*procs, *warpers]:
        x = proc(ids, x)
    if history.shape[1] < s.min_new_tokens or (history.shape[1] == 0 and s.manual_seed is None):
        x[:, eos] = -torch.inf
    return np.asarray(x.numpy())


def engine_scores(logits: np.ndarray, history: np.ndarray, s: Any, eos: int,
                  monkeypatch: pytest.MonkeyPatch) -> np.ndarray:  # fmt: skip
    """The probabilities the torch engine's own sampling method hands to multinomial."""
    seen: list[Any] = []

    def capture(scores: Any, n: int, generator: Any = None) -> Any:
        seen.append(scores.clone())
        return torch.zeros(scores.shape[0], 1, dtype=torch.long)

    monkeypatch.setattr(torch, "multinomial", capture)
    warpers, procs = gen_logits(eos, s.top_p, s.top_k, s.repetition_penalty)
    processors = [*procs, *warpers]
    t = torch.from_numpy(logits)
    try:
        from chattts_server.engine.torch_step import TorchGPT, _TorchRow
    except ImportError:  # the engine before the pipeline split: Batcher._sample
        from chattts_server.engine.batching import Batcher

        ids = torch.zeros(history.shape[0], history.shape[1] + 1, dtype=torch.long)
        ids[:, : history.shape[1]] = torch.as_tensor(history)
        gen = SimpleNamespace(sampling=s)
        row = SimpleNamespace(gen=gen, ids=ids, steps=history.shape[1],
                              processors=processors, generator=None)  # fmt: skip
        Batcher._sample(None, row, t, eos)
    else:
        parts = TorchGPT(None, None, None, None, eos, history.shape[0])
        parts.sample(_TorchRow(None, processors, None), s, history, t)
    monkeypatch.undo()
    return np.asarray(seen[0].numpy())


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, S]:
    n = TOKENS if rng.random() < 0.8 else int(rng.choice([3, 5, 16, 40]))
    kind = rng.choice(["normal", "wide", "peaked", "ties", "inf", "flat"])
    x = rng.standard_normal((VQ, n)).astype(np.float32) * np.float32(rng.choice([0.5, 1, 3]))
    if kind == "wide":
        x *= np.float32(30)
    elif kind == "peaked":
        x[np.arange(VQ), rng.integers(0, n, VQ)] += np.float32(rng.choice([8, 40, 200]))
    elif kind == "ties":
        x = np.round(x * np.float32(rng.choice([1, 2, 4]))) / np.float32(2)
    elif kind == "inf":
        x[rng.random((VQ, n)) < rng.choice([0.05, 0.5, 0.95])] = -np.inf
        x[np.arange(VQ), rng.integers(0, n, VQ)] = rng.standard_normal(VQ)  # one finite at least
    elif kind == "flat":
        x[:] = np.float32(rng.choice([0, 1.5, -2]))
    steps = int(rng.choice([0, 1, 5, 16, 17, 40]))
    pool = rng.integers(0, n, int(rng.integers(1, 6)))  # few distinct ids: counts up to 16
    history = rng.choice(pool, (VQ, steps)).astype(np.int64)
    s = S(
        temperature=float(rng.choice([0.3, 0.05, 0.7, 1.0, 1.7])),
        top_p=[None, 0.7, 0.9, 0.5, 0.1, 1.0, 0.0][int(rng.integers(7))],
        top_k=[None, 20, 1, 3, 5, 626, 1000][int(rng.integers(7))],
        repetition_penalty=float(rng.choice([1.05, 1.0, 1.3, 2.0, 0.9, 1.0001])),
        min_new_tokens=int(rng.choice([0, 0, 3, 50])),
        manual_seed=None if rng.random() < 0.5 else int(rng.integers(0, 2**32)),
    )
    return x, history, s


def test_processed_logits_match_chattts_processors() -> None:
    rng = np.random.default_rng(1234)
    cases, exact_pattern, tie_permuted, tie_cases, worst_p = 2000, 0, 0, 0, 0.0
    for _ in range(cases):
        x, history, s = random_case(rng)
        eos = x.shape[1] - 1
        want = reference(x, history, s, eos)
        got = process(x, history, s, eos)
        assert got.dtype == np.float32 and got.shape == want.shape
        finite_rows = [row[np.isfinite(row)] for row in x]
        ties = any(np.unique(row).size < row.size for row in finite_rows)
        tie_cases += ties
        if np.array_equal(np.isneginf(got), np.isneginf(want)):
            exact_pattern += 1
            fin = np.isfinite(want)
            assert np.array_equal(np.isfinite(got), fin)
            # finite values: the same float32 operations as torch's
            assert np.allclose(got[fin], want[fin], rtol=1e-6, atol=0), s
            p, q = softmax(got), np.asarray(F.softmax(torch.from_numpy(want), dim=-1).numpy())
            assert np.array_equal(np.isnan(p), np.isnan(q))  # no finite logit left: both NaN
            assert np.array_equal(p == 0, q == 0)
            # float32 denormals (< 1.2e-38) have fewer bits: a few of their ulps (1.4e-45)
            assert (np.abs(p - q) <= 1e-5 * q + 1e-44)[~np.isnan(q)].all()
            normal = q > 1.2e-38
            if normal.any():
                worst_p = max(worst_p, float((np.abs(p - q)[normal] / q[normal]).max()))
        else:
            # only allowed where tokens with equal logits straddle a cut: torch's sort is not
            # stable, so which of them go may differ; before the end-token rule (which can
            # then hit one side and not the other) the kept values are the same multiset
            assert ties, s  # without exact ties the pattern is torch's
            tie_permuted += 1
            free = replace(s, min_new_tokens=0, manual_seed=1)
            a_all, b_all = process(x, history, free, eos), reference(x, history, free, eos)
            for r in range(x.shape[0]):
                a, b = a_all[r], b_all[r]
                if not np.array_equal(np.isneginf(a), np.isneginf(b)):
                    assert np.array_equal(np.sort(a), np.sort(b)), s
                    diff = np.isneginf(a) != np.isneginf(b)
                    assert np.unique(x[r][diff]).size < diff.sum(), "not a tie"
    print(f"{cases} cases ({tie_cases} with exact ties): {exact_pattern} same -inf pattern, "
          f"{tie_permuted} tie-permuted; probabilities within {worst_p:.2g} relative")  # fmt: skip
    assert exact_pattern > cases * 0.75


def test_tie_free_rows_match_exactly() -> None:
    """Without exact ties, the dropped tokens are torch's in every case."""
    rng = np.random.default_rng(99)
    for _ in range(600):
        x = rng.standard_normal((VQ, TOKENS)).astype(np.float32) * np.float32(3)
        if np.unique(x).size != x.size:
            continue
        history = rng.integers(0, TOKENS, (VQ, int(rng.integers(0, 30))))
        s = S(
            temperature=float(rng.uniform(0.05, 2)),
            top_p=float(rng.uniform(0, 1)),
            top_k=int(rng.integers(1, 700)),
            repetition_penalty=float(rng.uniform(0.8, 2.5)),
            min_new_tokens=int(rng.integers(0, 3)),
            manual_seed=None if rng.random() < 0.5 else 7,
        )
        want = reference(x, history, s, EOS)
        got = process(x, history, s, EOS)
        assert np.array_equal(np.isneginf(got), np.isneginf(want)), s
        fin = np.isfinite(want)
        assert np.array_equal(got[fin], want[fin]), s  # bit for bit


def test_repetition_penalty_is_bit_exact() -> None:
    from ChatTTS.model.processors import CustomRepetitionPenaltyLogitsProcessorRepeat as Rep

    rng = np.random.default_rng(5)
    for penalty in [1.05, 1.2, 1.01, 1.5, 2.0, 1.3, 0.5, *rng.uniform(0.5, 3, 40).tolist()]:
        x = rng.standard_normal((VQ, TOKENS)).astype(np.float32) * np.float32(4)
        history = rng.integers(0, 20, (VQ, 16))  # counts up to 16, the window's maximum
        history[0] = 3  # one token 16 times
        want = Rep(penalty, EOS, 16)(torch.as_tensor(history), torch.from_numpy(x)).numpy()
        assert np.array_equal(repetition_penalty(x, history, penalty, EOS), want), penalty
    # ChatTTS's max_input_ids applies to codebook rows (a quirk kept): rows >= it unpenalised
    x = rng.standard_normal((6, 10)).astype(np.float32)
    history = rng.integers(0, 10, (6, 8))
    want = Rep(1.5, 4, 16)(torch.as_tensor(history), torch.from_numpy(x)).numpy()
    got = repetition_penalty(x, history, 1.5, 4)
    assert np.array_equal(got, want) and np.array_equal(got[4:], x[4:])


def test_matches_the_torch_engines_own_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    for i in range(60):
        x, history, s = random_case(rng)
        if i % 3 == 0:
            x = rng.standard_normal((VQ, TOKENS)).astype(np.float32) * np.float32(3)
            history = rng.integers(0, TOKENS, (VQ, i))
        eos = x.shape[1] - 1
        want = engine_scores(x, history, s, eos, monkeypatch)
        q = np.asarray(F.softmax(torch.from_numpy(reference(x, history, s, eos)), -1).numpy())
        assert np.array_equal(want, q)  # the reference above is the engine's computation
        got = Sampler(s, eos).probabilities(x, history)
        if np.array_equal(got == 0, want == 0):
            assert np.allclose(got, want, rtol=1e-5, atol=1e-12)


def test_end_token_rule() -> None:
    x = np.random.default_rng(2).standard_normal((VQ, TOKENS)).astype(np.float32)
    x[:, EOS] = 50  # the end token would win
    empty = np.zeros((VQ, 0), np.int64)
    for s, steps, masked in [
        (S(manual_seed=None), 0, True),  # first step, unseeded: never empty
        (S(manual_seed=1), 0, False),
        (S(manual_seed=1, min_new_tokens=3), 2, True),
        (S(manual_seed=None, min_new_tokens=3), 3, False),
    ]:
        history = empty if steps == 0 else np.ones((VQ, steps), np.int64)
        got = process(x, history, s, EOS)
        assert bool(np.isneginf(got[:, EOS]).all()) == masked
        assert np.array_equal(np.isneginf(got), np.isneginf(reference(x, history, s, EOS)))
        ids = Sampler(s, EOS).sample(x, history)
        assert ((ids == EOS).all()) == (not masked)


def test_draw_is_deterministic_with_a_manual_seed() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((VQ, TOKENS)).astype(np.float32)
    history = rng.integers(0, TOKENS, (VQ, 10))
    s = S(temperature=1.0, top_p=None, top_k=None, manual_seed=1234)
    a, b = Sampler(s, EOS), Sampler(s, EOS)
    first = a.sample(x, history)
    for _ in range(5):  # re-seeded before every draw, as the torch engine does
        assert np.array_equal(a.sample(x, history), first)
        assert np.array_equal(b.sample(x, history), first)
    others = {tuple(Sampler(S(temperature=1.0, top_p=None, top_k=None, manual_seed=k), EOS)
                    .sample(x, history)) for k in range(20)}  # fmt: skip
    assert len(others) > 15
    unseeded = Sampler(S(temperature=1.0, top_p=None, top_k=None), EOS)
    assert len({tuple(unseeded.sample(x, history)) for _ in range(20)}) > 15


def test_draw_follows_the_probabilities() -> None:
    probs = np.array([[0.0, 0.1, 0.0, 0.6, 0.3, 0.0]] * VQ, np.float32)
    sampler = Sampler(S(), EOS)
    counts = np.zeros(probs.shape[1])
    n = 5000
    for _ in range(n):
        counts += np.bincount(sampler.draw(probs), minlength=probs.shape[1])
    freq = counts / (n * VQ)
    assert counts[probs[0] == 0].sum() == 0
    sigma = np.sqrt(probs[0] * (1 - probs[0]) / (n * VQ))
    assert (np.abs(freq - probs[0]) <= 5 * sigma + 1e-12).all(), freq
    # a uniform draw that rounds up to the total never picks a zero-probability token
    sampler._rng = SimpleNamespace(random=lambda k: np.full(k, 1 - 2**-53))
    assert (sampler.draw(probs) == 4).all()
    sampler._rng = SimpleNamespace(random=lambda k: np.zeros(k))
    assert (sampler.draw(probs) == 1).all()
    with pytest.raises(ValueError):
        sampler.draw(np.zeros((VQ, 6), np.float32))


def test_batch_form_is_row_by_row() -> None:
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((3, VQ, TOKENS)).astype(np.float32)
    histories = [rng.integers(0, TOKENS, (VQ, k)) for k in (0, 5, 30)]
    params = [S(manual_seed=1), S(manual_seed=2, top_k=5), S(manual_seed=3, top_p=None)]
    got = sample_batch([Sampler(p, EOS) for p in params], logits, histories)
    for i, p in enumerate(params):
        assert np.array_equal(got[i], Sampler(p, EOS).sample(logits[i], histories[i]))
    with pytest.raises(ValueError):
        sample_batch([Sampler(params[0], EOS)], logits, histories)


def test_parameter_checks_match_the_constructors() -> None:
    for bad in (S(repetition_penalty=2), S(repetition_penalty=-1.5), S(top_p=1.5), S(top_k=0)):
        with pytest.raises(ValueError):
            gen_logits(EOS, bad.top_p, bad.top_k, bad.repetition_penalty)
        with pytest.raises(ValueError):
            Sampler(bad, EOS)
    Sampler(S(repetition_penalty=1), EOS)  # 1 (even an int) means no penalty, as in ChatTTS


def test_a_row_is_fast() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((VQ, TOKENS)).astype(np.float32) * np.float32(3)
    history = rng.integers(0, TOKENS, (VQ, 200))
    timings = {}
    for name, s in (("seeded", S(manual_seed=5)), ("unseeded", S())):
        sampler = Sampler(s, EOS)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200):
                sampler.sample(logits, history)
            best = min(best, (time.perf_counter() - started) / 200)
        timings[name] = best * 1e6
    print(f"µs per row (vq={VQ}, tokens={TOKENS}): {timings}")
    assert max(timings.values()) < 1000


def test_the_front_modules_import_no_torch(tmp_path: Path) -> None:
    """In a torch-free install: the three modules import and run with torch, transformers,
    ChatTTS and numba unimportable."""
    import ChatTTS

    map_path = Path(ChatTTS.__file__).parent / "res" / "homophones_map.json"
    script = textwrap.dedent(
        f"""
        import sys
        BLOCKED = ("torch", "transformers", "ChatTTS", "numba")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        import numpy as np
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import Whitespace
        from chattts_server.engine.onnx import normalizer, prompt, sampling

        n = normalizer.Normalizer({str(map_path)!r})
        assert n("你好, world!", lang="zh") == "你好， world。"
        tok = Tokenizer(WordLevel({{"[UNK]": 0, "hi": 1}}, unk_token="[UNK]"))
        tok.pre_tokenizer = Whitespace()
        b = prompt.PromptBuilder(tok, np.ones((2, 8)), np.ones((4, 5, 8)), 4, 1)
        assert b.build("hi", speed_level=5, txt_smp=None, spk_emb=None).shape[1] == 8
        s = sampling.Sampler(type("S", (), dict(temperature=0.3, top_p=0.7, top_k=20,
            repetition_penalty=1.05, min_new_tokens=0, manual_seed=1))(), 4)
        assert s.sample(np.zeros((4, 5), np.float32), np.zeros((4, 0), np.int64)).shape == (4,)
        loaded = [m for m in BLOCKED if m in sys.modules]
        assert not loaded, loaded
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
