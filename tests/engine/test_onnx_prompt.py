"""The torch-free prompt builder against the torch engine's ``_prompt`` on the tiny model: the
exported tokenizer gives ChatTTS's ids, ``decorate`` ChatTTS's text, and the embeddings match
for Chinese and English, seed voices, no voice, a reference clip, every speed level."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chattts_server.engine.onnx.prompt import (
    PromptBuilder,
    decorate,
    export_tokenizer,
    load_tokenizer,
)

torch = pytest.importorskip("torch")
pytest.importorskip("ChatTTS")

from chattts_server.engine import ChatTTSEngine, EngineConfig, SynthesisRequest  # noqa: E402
from chattts_server.engine import text as textprep  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]
SPEEDS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0)  # levels 0…9
TEXTS = {
    "zh": "你好，世界！今天是2024年5月1日[uv_break]，我们去公园玩吧[laugh]。",
    "en": "Hello world, it's 10:30 and I have 42 apples [uv_break] to share [lbreak].",
}
REF_TEXT = {"zh": "这是参考音频的文本。", "en": "These are the reference clip's words."}


@pytest.fixture(scope="module")
def torch_engine(tiny_model_dir: Path) -> Iterator[ChatTTSEngine]:
    eng = ChatTTSEngine(
        EngineConfig(model_dir=str(tiny_model_dir), max_new_tokens=48, warmup=False)
    )
    eng.load()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def builder(
    torch_engine: ChatTTSEngine, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> PromptBuilder:
    path = export_tokenizer(
        tiny_model_dir / "asset" / "tokenizer", tmp_path_factory.mktemp("onnx") / "tokenizer.json"
    )
    chat = torch_engine._chat
    emb_code = np.stack([e.weight.detach().cpu().numpy() for e in chat.embed.emb_code])
    return PromptBuilder(
        load_tokenizer(path),
        chat.embed.emb_text.weight.detach().cpu().numpy(),
        emb_code,
        int(chat.config.gpt.num_vq),
        int(chat.tokenizer.spk_emb_ids),
    )


def torch_prompt(engine: ChatTTSEngine, text: str, p: Any, spk_smp: str | None,
                 txt_smp: str | None) -> np.ndarray:  # fmt: skip
    """``_prompt`` called as ``_segment`` calls it (on the model thread, in its session)."""
    if hasattr(engine, "_in_session"):
        emb = engine.batcher.call(engine._in_session, engine._prompt, text, p, spk_smp, txt_smp)
    else:  # the engine before the pipeline split
        from chattts_server.engine.chattts_engine import _inference_mode

        emb = engine.batcher.call(
            _inference_mode, engine._prompt, engine._chat, text, p, spk_smp, txt_smp
        )
    return np.asarray(emb.detach().cpu().numpy())


def torch_ids(engine: ChatTTSEngine, decorated: str, smp: Any = None) -> np.ndarray:
    chat = engine._chat
    ids, _, _ = chat.tokenizer.encode([decorated], chat.config.gpt.num_vq, prompt=smp)
    return np.asarray(ids[0].numpy())


def normalized(spk_emb: str, engine: ChatTTSEngine) -> np.ndarray:
    """What ``Speaker.apply`` writes: the float16 values normalised (in float16), as float32."""
    values = torch.from_numpy(engine._chat.speaker._decode(spk_emb))
    vec = torch.nn.functional.normalize(values, p=2.0, dim=0, eps=1e-12)
    return np.asarray(vec.float().numpy())


def _literals() -> list[str]:
    letter = re.compile(r"[A-Za-z\u4e00-\u9fff]")
    out: set[str] = set()
    for path in sorted(TESTS.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        out.update(
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and letter.search(n.value)
        )
    return sorted(out)


def test_decorate_is_chattts_decorate_code_prompts() -> None:
    from ChatTTS.model.speaker import Speaker

    texts = [
        "你好", "  Hello [Stts] there [spk_emb] and [empty_spk]  ", "", "[Ptts]x[speed_3]",
        "[Stts][spk_emb][empty_spk]", " \t 前后空白 \n",
    ]  # fmt: skip
    n = 0
    for text in texts:
        for level in range(10):
            for txt_smp in (None, "", "参考 text"):
                for spk in (None, "anything"):
                    want = Speaker.decorate_code_prompts([text], f"[speed_{level}]", txt_smp, spk)
                    assert decorate(text, level, txt_smp, spk is not None) == want[0]
                    n += 1
    assert n == 360


def test_exported_tokenizer_gives_chattts_ids(
    torch_engine: ChatTTSEngine, builder: PromptBuilder
) -> None:
    corpus = _literals()
    assert len(corpus) > 300
    for text in corpus + [decorate(t, 5, "参考", True) for t in TEXTS.values()]:
        want = torch_ids(torch_engine, text)
        assert want.shape[1] == builder.num_vq and (want == want[:, :1]).all()
        assert builder.encode(text) == want[:, 0].tolist(), text


def test_exported_tokenizer_file_has_no_padding(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = export_tokenizer(tiny_model_dir / "asset" / "tokenizer", tmp_path / "t.json")
    tok = load_tokenizer(path)
    assert tok.padding is None and tok.truncation is None
    plain = tok.encode("[Stts]hi[Ptts]", add_special_tokens=False).ids
    tok.enable_padding(length=500)  # a padded tokenizer is copied, never padded
    b = PromptBuilder(tok, np.zeros((21178, 4), np.float32), np.zeros((4, 626, 4)), 4, 21143)
    assert b.encode("[Stts]hi[Ptts]") == plain
    assert tok.padding is not None  # the caller's object is left alone


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_prompt_matches_the_torch_engine(
    torch_engine: ChatTTSEngine, builder: PromptBuilder, lang: str
) -> None:
    chat = torch_engine._chat
    vq = builder.num_vq
    rng = np.random.default_rng(7)
    clip = rng.integers(0, builder.num_audio_tokens, (vq, 37))
    clip[:, 0] = [0, builder.num_audio_tokens - 1, 1, 2][:vq]  # the extremes
    spk_smp = str(chat.speaker.encode_prompt(torch.from_numpy(clip)))
    levels, worst, cases = set(), 0.0, 0
    for speed in SPEEDS:
        level = textprep.speed_to_level(speed)
        levels.add(level)
        seed_req = SynthesisRequest(text=TEXTS[lang], seed=11 + level, speed=speed, lang=lang)
        ref_req = SynthesisRequest(
            text=TEXTS[lang], ref_tokens=spk_smp, ref_text=REF_TEXT[lang], speed=speed, lang=lang
        )
        for voice in ("seed", "none", "clip"):
            p = torch_engine._prepare(ref_req if voice == "clip" else seed_req)
            if voice == "none":
                p = dataclasses.replace(p, voice=dataclasses.replace(p.voice, spk_emb=None))
            text = p.segments[0].text
            spk, smp_str, txt_smp, tokens = p.voice.spk_emb, None, None, None
            if voice == "clip":
                assert spk is None
                smp_str = p.voice.ref_tokens
                txt_smp = torch_engine._normalize(p.voice.ref_text, p.lang)  # as _run does
                tokens = chat.speaker.decode_prompt(smp_str).numpy()
                assert (tokens == clip).all()
            want = torch_prompt(torch_engine, text, p, smp_str, txt_smp)
            vec = None if spk is None else normalized(spk, torch_engine)
            got = builder.build(
                text, speed_level=level, txt_smp=txt_smp, spk_emb=vec, prompt_tokens=tokens
            )
            decorated = decorate(text, level, txt_smp, spk is not None)
            smp = None if tokens is None else torch.from_numpy(tokens)
            ids = builder.input_ids(
                text, speed_level=level, txt_smp=txt_smp, has_spk_emb=spk is not None,
                prompt_tokens=tokens,
            )  # fmt: skip
            assert np.array_equal(ids, torch_ids(torch_engine, decorated, smp))
            assert got.dtype == np.float32 and got.shape == want.shape == (ids.shape[0], 64)
            worst = max(worst, float(np.abs(got - want).max()))
            assert np.abs(got - want).max() <= 1e-6, (lang, speed, voice)
            n_text = len(builder.encode(decorated))
            assert np.array_equal(got[:n_text], want[:n_text])  # lookups: bit for bit
            if vec is not None:
                assert (ids[:, 0] == builder.spk_emb_id).sum() == 1
            cases += 1
    assert levels == set(range(10)) and cases == 30
    print(f"{lang}: {cases} prompts, max |ours - torch| = {worst:.3g}")


def test_processors_are_the_engines(torch_engine: ChatTTSEngine) -> None:
    """The sampling tests build ChatTTS's processors with ``gen_logits(eos, ...)``: the engine
    builds the same ones."""
    from ChatTTS.model.processors import CustomRepetitionPenaltyLogitsProcessorRepeat

    from chattts_server.engine.batching import Sampling

    parts: Any = torch_engine.parts
    procs = parts.make_processors(Sampling(top_p=0.5, top_k=7, repetition_penalty=1.2))
    rep, top_p, top_k = procs
    assert isinstance(rep, CustomRepetitionPenaltyLogitsProcessorRepeat)
    assert (rep.penalty, rep.max_input_ids, rep.past_window) == (1.2, parts.eos, 16)
    assert parts.eos == torch_engine._chat.config.gpt.num_audio_tokens - 1
    assert type(top_p).__name__ == "TopPLogitsWarper" and top_p.top_p == 0.5
    assert top_p.min_tokens_to_keep == 3
    assert type(top_k).__name__ == "TopKLogitsWarper" and top_k.top_k == 7


def test_build_checks_its_inputs(builder: PromptBuilder) -> None:
    vq, n = builder.num_vq, builder.num_audio_tokens
    kw: dict[str, Any] = {"speed_level": 5, "txt_smp": None, "spk_emb": None}
    with pytest.raises(ValueError):
        builder.build("hi", **kw, prompt_tokens=np.zeros((vq + 1, 3), np.int64))
    with pytest.raises(ValueError):
        builder.build("hi", **kw, prompt_tokens=np.full((vq, 3), n))
    with pytest.raises(ValueError):
        builder.build("hi", **kw, prompt_tokens=np.full((vq, 3), -1))
    with pytest.raises(ValueError):
        builder.build("hi", speed_level=5, txt_smp=None, spk_emb=np.zeros(3, np.float32))
    empty = builder.build("hi", **kw, prompt_tokens=np.zeros((vq, 0), np.int64))
    assert np.array_equal(empty, builder.build("hi", **kw))
