"""Generated test checkpoints: the real ChatTTS architecture with random weights.

Written in exactly ChatTTS's asset layout (``asset/Vocos.safetensors``, ``DVAE``, ``Decoder``,
``Embed``, ``asset/gpt/`` as ``LlamaModel.save_pretrained`` writes it, ``asset/tokenizer/``)
plus :data:`MANIFEST_NAME`, which marks the directory as a test model and records the
architecture. ``tiny`` loads and speaks (noise) in well under a second; ``full`` has the official
sizes so that benchmarks pay the real compute per token. Random weights make noise, not speech.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .loader import MANIFEST_KIND, MANIFEST_NAME, build_config

Size = Literal["tiny", "full"]

# ChatTTS's 50 tokens, in id order from 21128 (the order matters: ids are positional).
CHATTTS_TOKENS: tuple[str, ...] = (
    "[Sasr]", "[Pasr]", "[Easr]", "[Stts]", "[Ptts]", "[Etts]", "[Sbreak]", "[Pbreak]",
    "[Ebreak]", "[uv_break]", "[v_break]", "[lbreak]", "[llbreak]", "[undefine]", "[laugh]",
    "[spk_emb]", "[empty_spk]", "[music]", "[pure]",
    *(f"[break_{i}]" for i in range(8)),
    *(f"[laugh_{i}]" for i in range(3)),
    *(f"[oral_{i}]" for i in range(10)),
    *(f"[speed_{i}]" for i in range(10)),
)  # fmt: skip
WORDPIECE_SIZE = 21128

# Overrides of ChatTTS's Config for the tiny architecture; they keep the shape equalities
# decoder.idim = decoder.odim = gpt.hidden/2, dvae.vq.dim = 2 × dvae.decoder.idim,
# dvae.encoder.idim = dvae.decoder.idim, dvae.encoder.odim = vq.dim, embed = gpt hidden.
TINY_CONFIG: dict[str, Any] = {
    "gpt": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
    },
    "embed": {"hidden_size": 64},
    "decoder": {"idim": 32, "odim": 32, "hidden": 32, "n_layer": 1, "bn_dim": 16},
    "dvae": {
        "encoder": {"idim": 32, "odim": 64, "hidden": 32, "n_layer": 1, "bn_dim": 16},
        "decoder": {"idim": 32, "odim": 32, "hidden": 32, "n_layer": 1, "bn_dim": 16},
        "vq": {"dim": 64},
    },
    "vocos": {
        "backbone": {"init_args": {"dim": 32, "intermediate_dim": 64, "num_layers": 1}},
        "head": {"init_args": {"dim": 32}},
    },
}


def _wordpiece_vocab() -> list[str]:
    """A 21128-entry BERT-style vocabulary: specials, ASCII, Latin pieces, CJK characters."""
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]"]
    vocab.append("[MASK]")
    ascii_chars = [chr(c) for c in range(33, 127)]
    vocab += ascii_chars + ["##" + c for c in ascii_chars if c.isalnum()]
    vocab += [chr(c) for c in range(0x3000, 0x3040)] + [chr(c) for c in range(0xFF01, 0xFF5F)]
    seen = set(vocab)
    code = 0x4E00
    while len(vocab) < WORDPIECE_SIZE:
        ch = chr(code)
        if ch not in seen:
            vocab.append(ch)
        code += 1
    return vocab


def write_tokenizer(path: Path) -> None:
    """A ``BertTokenizerFast`` directory with ChatTTS's special tokens at ids 21128–21177."""
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    path.mkdir(parents=True, exist_ok=True)
    vocab = _wordpiece_vocab()
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers 5
        tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    else:  # transformers 4 reads a vocab file
        with tempfile.TemporaryDirectory() as tmp:
            vocab_file = Path(tmp) / "vocab.txt"
            vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
            tok = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    tok.add_special_tokens({"additional_special_tokens": list(CHATTTS_TOKENS)})
    ids = tok.convert_tokens_to_ids(list(CHATTTS_TOKENS))
    expected = list(range(WORDPIECE_SIZE, WORDPIECE_SIZE + len(CHATTTS_TOKENS)))
    if ids != expected:  # pragma: no cover - guards the id layout ChatTTS depends on
        raise RuntimeError("generated tokenizer does not place ChatTTS tokens at 21128..21177")
    tok.save_pretrained(str(path))


def _spk_stat(hidden: int, rng: np.random.Generator) -> str:
    import pybase16384 as b14

    std = rng.uniform(0.5, 1.5, hidden).astype(np.float16)
    mean = rng.normal(0.0, 0.2, hidden).astype(np.float16)
    return str(b14.encode_to_string(np.concatenate([std, mean]).tobytes()))


def _save(module: Any, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path))


def make_test_model(directory: str | Path, size: Size = "tiny", seed: int = 0) -> Path:
    """Write a random-weight ChatTTS checkpoint of ``size`` into ``directory``.

    The same ``size`` and ``seed`` give the same weights. Returns the directory.
    """
    import torch
    from ChatTTS.model import DVAE, Embed
    from transformers import LlamaConfig, LlamaModel
    from vocos import Vocos
    from vocos.pretrained import instantiate_class

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    root = Path(directory)
    asset = root / "asset"
    asset.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = json.loads(json.dumps(TINY_CONFIG)) if size == "tiny" else {}
    rng = np.random.default_rng(seed)
    if size == "tiny":
        overrides["spk_stat"] = _spk_stat(overrides["gpt"]["hidden_size"], rng)
    cfg = build_config(overrides)

    torch.manual_seed(seed)
    with torch.no_grad():
        vocos = Vocos(
            feature_extractor=instantiate_class(args=(), init=asdict(cfg.vocos.feature_extractor)),
            backbone=instantiate_class(args=(), init=asdict(cfg.vocos.backbone)),
            head=instantiate_class(args=(), init=asdict(cfg.vocos.head)),
        )
        _save(vocos, asset / "Vocos.safetensors")
        dvae = DVAE(
            decoder_config=asdict(cfg.dvae.decoder),
            encoder_config=asdict(cfg.dvae.encoder),
            vq_config=asdict(cfg.dvae.vq),
            dim=cfg.dvae.decoder.idim,
        )
        _save(dvae, asset / "DVAE.safetensors")
        decoder = DVAE(decoder_config=asdict(cfg.decoder), dim=cfg.decoder.idim)
        _save(decoder, asset / "Decoder.safetensors")
        embed = Embed(
            cfg.embed.hidden_size,
            cfg.embed.num_audio_tokens,
            cfg.embed.num_text_tokens,
            cfg.embed.num_vq,
        )
        _save(embed, asset / "Embed.safetensors")
        gpt_cfg = {k: v for k, v in asdict(cfg.gpt).items()}
        gpt = LlamaModel(LlamaConfig(**gpt_cfg, vocab_size=32000 if size == "full" else 8))
        gpt.save_pretrained(str(asset / "gpt"), safe_serialization=True)
    write_tokenizer(asset / "tokenizer")

    files = sorted(p for p in asset.rglob("*") if p.is_file())
    manifest = {
        "kind": MANIFEST_KIND,
        "size": size,
        "seed": seed,
        "config": overrides,
        "files": {str(p.relative_to(root)): _sha256(p) for p in files},
        "note": "random weights: this model makes noise, not speech",
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
