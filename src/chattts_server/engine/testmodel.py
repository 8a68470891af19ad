"""Generated test checkpoints: the real ChatTTS architecture with random weights.

Written in exactly ChatTTS's asset layout (``asset/Vocos.safetensors``, ``DVAE``, ``Decoder``,
``Embed``, ``asset/gpt/`` as ``LlamaModel.save_pretrained`` writes it, ``asset/tokenizer/``)
plus :data:`MANIFEST_NAME`, which marks the directory as a test model and records the
architecture. ``tiny`` loads and speaks (noise) in well under a second; ``full`` has the official
sizes so that benchmarks pay the real compute per token. Random weights make noise, not speech.

**Trained-like decoder layer scales.** Both decoders (the DVAE decoder and Vocos) are stacks of
ConvNeXt blocks whose residual branch is multiplied by a learned per-channel *layer scale*. At
initialisation it is 1e-6 (DVAE) and 1/8 (Vocos), which makes each block nearly the identity:
the decoders then barely look at neighbouring frames, and anything that depends on their reach
(the streaming window decoder's boundary error above all) looks exact when it is not. Training
grows these scales to order 0.1–1, so the generated models set every block's scale to
:data:`TRAINED_LAYER_SCALE` = 1.0, the pessimistic end of that range (the farthest reach): a bound
met here holds for trained decoders with smaller scales. ``layer_scale=None`` keeps the
initialisation values. The tiny model keeps the decoders' full depth (12 DVAE blocks, 8 Vocos
blocks) with narrow channels, so its receptive field, and its boundary behaviour, are the real
ones at a fraction of the compute.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .loader import MANIFEST_KIND, MANIFEST_NAME, build_config

Size = Literal["tiny", "full"]
log = logging.getLogger(__name__)
# bumped when the same arguments would give other weights (cached models are then regenerated)
GENERATOR_VERSION = 2

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
TRAINED_LAYER_SCALE = 1.0  # every decoder ConvNeXt block's layer scale (see the module doc)

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
    # the decoders keep ChatTTS's depth (their receptive field), only their width shrinks
    "decoder": {"idim": 32, "odim": 32, "hidden": 32, "n_layer": 12, "bn_dim": 16},
    "dvae": {
        "encoder": {"idim": 32, "odim": 64, "hidden": 32, "n_layer": 12, "bn_dim": 16},
        "decoder": {"idim": 32, "odim": 32, "hidden": 32, "n_layer": 12, "bn_dim": 16},
        "vq": {"dim": 64},
    },
    "vocos": {
        "backbone": {"init_args": {"dim": 32, "intermediate_dim": 64, "num_layers": 8}},
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


def set_layer_scales(module: Any, value: float) -> int:
    """Set every ConvNeXt layer scale in ``module`` (ChatTTS's ``weight``, Vocos' ``gamma``)
    to ``value``; returns how many blocks were set."""
    from ChatTTS.model.dvae import ConvNeXtBlock as DvaeBlock
    from vocos.modules import ConvNeXtBlock as VocosBlock

    n = 0
    for block in module.modules():
        scale = (
            block.weight
            if isinstance(block, DvaeBlock)
            else block.gamma
            if isinstance(block, VocosBlock)
            else None
        )
        if scale is not None:
            scale.data.fill_(value)
            n += 1
    return n


def make_test_model(
    directory: str | Path,
    size: Size = "tiny",
    seed: int = 0,
    layer_scale: float | None = TRAINED_LAYER_SCALE,
) -> Path:
    """Write a random-weight ChatTTS checkpoint of ``size`` into ``directory``.

    The same arguments give the same weights. ``layer_scale``: the decoders' ConvNeXt layer
    scales (trained-like 1.0 by default; None keeps the initialisation's 1e-6 and 1/8).
    Returns the directory.
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
        if layer_scale is not None:
            set_layer_scales(vocos, layer_scale)
        _save(vocos, asset / "Vocos.safetensors")
        dvae = DVAE(
            decoder_config=asdict(cfg.dvae.decoder),
            encoder_config=asdict(cfg.dvae.encoder),
            vq_config=asdict(cfg.dvae.vq),
            dim=cfg.dvae.decoder.idim,
        )
        if layer_scale is not None:
            set_layer_scales(dvae, layer_scale)
        _save(dvae, asset / "DVAE.safetensors")
        decoder = DVAE(decoder_config=asdict(cfg.decoder), dim=cfg.decoder.idim)
        if layer_scale is not None:
            set_layer_scales(decoder, layer_scale)
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
        "layer_scale": layer_scale,
        "generator": GENERATOR_VERSION,
        "config": overrides,
        "files": {str(p.relative_to(root)): _sha256(p) for p in files},
        "note": "random weights: this model makes noise, not speech",
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def ensure_test_model(directory: str | Path, size: Size) -> Path:
    """``directory``'s test model of ``size``, (re)generated unless it is what
    :func:`make_test_model` makes today (caches made by an older generator are replaced)."""
    from .loader import read_manifest

    root = Path(directory)
    manifest = read_manifest(root)
    current = manifest is not None and (
        manifest.get("size"),
        manifest.get("seed"),
        manifest.get("layer_scale"),
        manifest.get("generator"),
    ) == (size, 0, TRAINED_LAYER_SCALE, GENERATOR_VERSION)
    if not current:
        log.warning("generating a %s test model in %s", size, root)
        make_test_model(root, size)
    return root


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
