"""``chattts-server export-onnx``: a ChatTTS model folder → an ONNX Runtime model folder.

Needs the full install (torch, ChatTTS, onnx, onnx_ir); the result is served without them
(:mod:`.engine`). The model is loaded through ChatTTS's own code path (the same loader as the
PyTorch engine), then exported piece by piece:

- ``gpt.onnx``: the Llama GPT with its KV cache as inputs — one graph for the prompt
  (T positions, empty cache) and for each decode step (T = 1): ``inputs_embeds`` [B, T, H],
  ``attention_mask`` [B, cache + T] (1 = a position the row may see: rows of a batch have their
  own lengths in a shared cache), ``position_ids`` [B, T], ``past_key_i``/``past_value_i``
  [B, kv_heads, cache, head_dim] → ``hidden`` [B, H] (the last position, after the final norm),
  ``logits`` [B, num_vq, audio_tokens] (the four code heads, weight norm applied), and the new
  positions' ``present_key_i``/``present_value_i`` [B, kv_heads, T, head_dim] only: the
  caller writes them into its cache in place, so no step copies the cache (the first version
  returned past + new, a copy that took 45% of a step at 1024 positions). One graph, so the
  weights are in memory once.
- ``decoder.onnx``: ChatTTS's decoder (the DVAE-shaped ``Decoder``) and Vocos up to its
  spectrum: hidden [1, T, H] → ``real``, ``imag`` [1, n_fft/2 + 1, frames]. The ISTFT has no
  ONNX op; :func:`~.runtime.istft` does it in numpy, as sherpa-onnx does in C++.
- ``encoder.onnx``: the DVAE encoder for reference clips: log-mel features → token ids
  [num_vq, frames/2]; the mel features are computed in numpy (:mod:`.runtime`).
- ``embeddings.npz``: the text and code embedding tables (the prompt is embedded in numpy);
  ``tokenizer.json`` (``tokenizers``); ``homophones_map.json`` (ChatTTS's normalizer);
  ``manifest.json``: sizes, opset, weights variant, accuracy level, the source weights'
  fingerprint, and every file's sha256.

``--weights int8|int4`` quantizes the GPT's MatMul weights with ONNX Runtime's weight-only
``MatMulNBits`` (symmetric, one scale per block of 32 input values) at ``accuracy_level`` 4:
int8 activations in the kernels (AVX-512 VNNI / AVX2 here), the setting that made 8-bit
weights about 6× faster than fp32 in the measurements in ``shared/notes``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..loader import read_manifest
from .files import FORMAT, FORMAT_VERSION, MANIFEST

log = logging.getLogger(__name__)

OPSET = 17
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4
WEIGHTS = ("fp32", "int8", "int4")


def export(model_dir: str | Path, out_dir: str | Path, weights: str = "fp32") -> Path:
    """Export the ChatTTS model in ``model_dir`` to ``out_dir`` (made or replaced)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}")
    import torch

    from ..chattts_engine import ChatTTSEngine
    from ..pipeline import EngineConfig

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    engine = ChatTTSEngine(
        EngineConfig(model_dir=str(model_dir), device="cpu", warmup=False, pack_weights=False)
    )
    engine.load()
    try:
        chat = engine._chat
        info = engine.info.model
        assert info is not None
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter's deprecation notice and the tracer's notes on
            # vector_quantize_pytorch's shape asserts (constant for a given model)
            warnings.simplefilter("ignore")
            gpt = _export_gpt(chat, out / "gpt.onnx")
            _export_decoder(chat, out / "decoder.onnx")
            encoder = _export_encoder(chat, out / "encoder.onnx")
        _save_tables(chat, out / "embeddings.npz")
        _save_text_files(chat, Path(model_dir), out)
    finally:
        engine.close()
    if weights != "fp32":
        _quantize(out / "gpt.onnx", bits=8 if weights == "int8" else 4)
    cfg, istft = chat.config, chat.vocos.head.istft
    if istft.padding != "center" or istft.win_length != istft.n_fft:
        raise ModelLoadError(f"Vocos' ISTFT uses padding {istft.padding!r}: only center is done")
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "weights": weights,
        "quantization": None
        if weights == "fp32"
        else {
            "op": "MatMulNBits",
            "bits": 8 if weights == "int8" else 4,
            "block_size": BLOCK_SIZE,
            "symmetric": True,
            "accuracy_level": ACCURACY_LEVEL,
        },
        "opset": OPSET,
        "source": {
            "path": str(Path(model_dir).resolve()),
            "fingerprint": info.fingerprint,
            "is_test_model": info.is_test_model,
            "size": info.size,
            "test_model": read_manifest(model_dir),  # a generated model's manifest, else None
        },
        "model": {
            **gpt,
            "num_vq": int(cfg.gpt.num_vq),
            "num_audio_tokens": int(cfg.gpt.num_audio_tokens),
            "num_text_tokens": int(cfg.gpt.num_text_tokens),
            "spk_stat": cfg.spk_stat,
            "spk_emb_token": int(chat.tokenizer.spk_emb_ids),
            "sample_rate": 24000,
            "n_fft": int(istft.n_fft),
            "hop_length": int(istft.hop_length),
            "encoder": encoder,
        },
        "files": _file_table(out),
        "exported_in_s": round(time.perf_counter() - started, 1),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("exported %s (%s) to %s", model_dir, weights, out)
    return out


# --- the GPT ---------------------------------------------------------------------------------


def _gpt_module(chat: Any) -> Any:
    import torch
    from torch import nn

    from ..torch_step import StepModel, rotate_half

    llama = chat.gpt.gpt
    shape = StepModel(llama)  # the torch engine's reading of the Llama config
    heads, kv_heads, head_dim = shape.heads, shape.kv_heads, shape.head_dim
    vq = int(chat.config.gpt.num_vq)
    head_weight = torch.cat([h.weight.detach().float() for h in chat.embed.head_code])

    class GPT(nn.Module):
        """A Llama forward over ChatTTS's modules with an explicit KV cache and mask (the same
        computation as :class:`~..torch_step.StepModel`, for whole batches)."""

        def __init__(self) -> None:
            super().__init__()
            self.llama = llama
            self.register_buffer("head_weight", head_weight)
            self.register_buffer("inv_freq", llama.rotary_emb.inv_freq.detach().float().clone())
            self.scaling = float(getattr(llama.rotary_emb, "attention_scaling", 1.0))

        def forward(
            self,
            inputs_embeds: torch.Tensor,
            attention_mask: torch.Tensor,
            position_ids: torch.Tensor,
            *past: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            b, t, _ = inputs_embeds.shape
            total = attention_mask.shape[1]
            inv_freq: Any = self.inv_freq
            freqs = position_ids[..., None].float() * inv_freq  # [B, T, dim/2]
            angles = torch.cat((freqs, freqs), dim=-1)
            cos = (angles.cos() * self.scaling)[:, None]  # [B, 1, T, dim]
            sin = (angles.sin() * self.scaling)[:, None]
            # who sees whom: the cache positions a row's mask marks, and the new positions
            # causally; the cache is only read (scores against it and against the new keys are
            # joined, not the keys themselves), so no step copies it
            p = total - t
            seen = attention_mask[:, None, None, :] > 0  # [B, 1, 1, P + T]
            bias_past = torch.where(seen[..., :p], 0.0, float("-inf"))  # [B, 1, 1, P]
            new_pos = torch.arange(t, device=inputs_embeds.device)
            causal = new_pos[None, :] <= new_pos[:, None]  # [T, T]
            bias_new = torch.where(causal[None, None] & seen[..., p:], 0.0, float("-inf"))
            scale = head_dim**-0.5
            x = inputs_embeds
            presents: list[torch.Tensor] = []
            for i, layer in enumerate(self.llama.layers):
                attn = layer.self_attn
                h = layer.input_layernorm(x)
                q = attn.q_proj(h).view(b, t, heads, head_dim).transpose(1, 2)
                k = attn.k_proj(h).view(b, t, kv_heads, head_dim).transpose(1, 2)
                v = attn.v_proj(h).view(b, t, kv_heads, head_dim).transpose(1, 2)
                q = q * cos + rotate_half(q) * sin
                k = k * cos + rotate_half(k) * sin
                presents += [k, v]
                past_k, past_v = past[2 * i], past[2 * i + 1]
                if kv_heads != heads:
                    rep = heads // kv_heads
                    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
                    past_k = past_k.repeat_interleave(rep, 1)
                    past_v = past_v.repeat_interleave(rep, 1)
                s_past = torch.matmul(q, past_k.transpose(2, 3)) * scale + bias_past
                s_new = torch.matmul(q, k.transpose(2, 3)) * scale + bias_new
                probs = torch.softmax(torch.cat((s_past, s_new), dim=-1), dim=-1)
                out = torch.matmul(probs[..., :p], past_v) + torch.matmul(probs[..., p:], v)
                out = out.transpose(1, 2).reshape(b, t, heads * head_dim)
                x = x + attn.o_proj(out)
                x = x + layer.mlp(layer.post_attention_layernorm(x))
            last = self.llama.norm(x)[:, -1]
            head: Any = self.head_weight
            logits = torch.matmul(last, head.t()).view(b, vq, -1)
            return (last, logits, *presents)

    return GPT().eval(), {
        "hidden_size": int(llama.config.hidden_size),
        "layers": len(llama.layers),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
    }


def _export_gpt(chat: Any, path: Path) -> dict[str, Any]:
    import torch

    module, shape = _gpt_module(chat)
    layers, kvh, hd = shape["layers"], shape["kv_heads"], shape["head_dim"]
    h = shape["hidden_size"]
    b, t, p = 2, 3, 5
    past = []
    names_in = ["inputs_embeds", "attention_mask", "position_ids"]
    names_out = ["hidden", "logits"]
    axes: dict[str, dict[int, str]] = {
        "inputs_embeds": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"},
        "hidden": {0: "batch"},
        "logits": {0: "batch"},
    }
    for i in range(layers):
        for kind in ("key", "value"):
            past.append(torch.zeros(b, kvh, p, hd))
            names_in.append(f"past_{kind}_{i}")
            names_out.append(f"present_{kind}_{i}")
            axes[f"past_{kind}_{i}"] = {0: "batch", 2: "past"}
            axes[f"present_{kind}_{i}"] = {0: "batch", 2: "new"}
    args = (
        torch.zeros(b, t, h),
        torch.ones(b, p + t, dtype=torch.int64),
        torch.arange(p, p + t).repeat(b, 1),
        *past,
    )
    torch.onnx.export(
        module,
        args,
        str(path),
        input_names=names_in,
        output_names=names_out,
        dynamic_axes=axes,
        opset_version=OPSET,
        dynamo=False,
    )
    return shape


# --- decoder, encoder, tables ------------------------------------------------------------------


def _export_decoder(chat: Any, path: Path) -> None:
    import torch
    from torch import nn

    decoder: Any = chat.decoder
    vocos: Any = chat.vocos

    class Decoder(nn.Module):
        """ChatTTS's ``_decode_to_wavs`` for one sequence, then Vocos to its complex spectrum
        (the ISTFT is done in numpy)."""

        def __init__(self) -> None:
            super().__init__()
            self.decoder, self.vocos = decoder, vocos

        def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            d: Any = self.decoder  # DVAE.forward's decode path without its ``out=`` ops
            x = hidden.transpose(1, 2)  # [1, H, T]
            x = x.view(x.size(0), 2, x.size(1) // 2, x.size(2)).permute(0, 2, 3, 1).flatten(2)
            mel = d.out_conv(d.decoder(x=x)) * d.coef
            vocos: Any = self.vocos
            x = vocos.backbone(mel)
            x = vocos.head.out(x).transpose(1, 2)
            mag, phase = x.chunk(2, dim=1)
            mag = torch.clip(torch.exp(mag), max=1e2)
            return mag * torch.cos(phase), mag * torch.sin(phase)

    h = int(chat.config.gpt.hidden_size)
    torch.onnx.export(
        Decoder().eval(),
        (torch.zeros(1, 8, h),),
        str(path),
        input_names=["hidden"],
        output_names=["real", "imag"],
        dynamic_axes={"hidden": {1: "tokens"}, "real": {2: "frames"}, "imag": {2: "frames"}},
        opset_version=OPSET,
        dynamo=False,
    )


def _export_encoder(chat: Any, path: Path) -> dict[str, Any] | None:
    """The DVAE encoder from log-mel features to token ids; ``None`` when the model has none."""
    import torch
    from torch import nn

    dvae = chat.dvae
    if getattr(dvae, "encoder", None) is None or dvae.vq_layer is None:
        return None

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dvae = dvae

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            d = self.dvae
            x = d.downsample_conv(mel / d.coef.view(1, 100, 1))
            x = d.encoder(x)
            return d.vq_layer(x)[0]

    mel = dvae.preprocessor_mel
    torch.onnx.export(
        Encoder().eval(),
        (torch.randn(1, 100, 40),),
        str(path),
        input_names=["mel"],
        output_names=["tokens"],
        dynamic_axes={"mel": {2: "frames"}, "tokens": {1: "tokens"}},
        opset_version=OPSET,
        dynamo=False,
    )
    spec = mel.mel_spec
    return {
        "sample_rate": int(spec.sample_rate),
        "n_fft": int(spec.n_fft),
        "hop_length": int(spec.hop_length),
        "win_length": int(spec.win_length),
        "n_mels": int(spec.n_mels),
        "center": bool(spec.spectrogram.center),
        "power": float(spec.spectrogram.power),
        "mel_scale": str(spec.mel_scale.mel_scale),
        "norm": spec.mel_scale.norm,
        "f_min": float(spec.f_min),
        "f_max": float(spec.f_max) if spec.f_max is not None else None,
    }


def _save_tables(chat: Any, path: Path) -> None:
    import numpy as np

    emb = chat.embed
    tables: dict[str, Any] = {
        "emb_text": emb.emb_text.weight.detach().float().numpy(),
        "emb_code": np.stack([e.weight.detach().float().numpy() for e in emb.emb_code]),
    }
    dvae = chat.dvae
    if getattr(dvae, "encoder", None) is not None:  # the window is Hann, in the manifest's spec
        spec = dvae.preprocessor_mel.mel_spec
        tables["mel_filters"] = spec.mel_scale.fb.detach().float().numpy()  # [freqs, mels]
    np.savez(path, **tables)


def _save_text_files(chat: Any, model_dir: Path, out: Path) -> None:
    import ChatTTS

    from .prompt import export_tokenizer

    export_tokenizer(model_dir / "asset" / "tokenizer", out / "tokenizer.json")
    res = Path(ChatTTS.__file__).parent / "res" / "homophones_map.json"
    shutil.copyfile(res, out / "homophones_map.json")


def _quantize(path: Path, bits: int) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    # the quantizer logs every node it skips at INFO
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, bits=bits, accuracy_level=ACCURACY_LEVEL
    )
    model = onnx.load(str(path))
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(path), use_external_data_format=False)


def _file_table(out: Path) -> dict[str, dict[str, Any]]:
    table = {}
    for f in sorted(out.iterdir()):
        if f.is_file() and f.name != MANIFEST:
            digest = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            table[f.name] = {"bytes": f.stat().st_size, "sha256": digest.hexdigest()}
    return table


def ensure_export(model_dir: str | Path, out_dir: str | Path, weights: str = "fp32") -> Path:
    """``out_dir``: an export of ``model_dir``'s weights with ``weights``, made (again) unless
    the one there is of this format version, these weights and this variant."""
    from ..chattts_engine import import_chattts
    from ..loader import resolve

    out = Path(out_dir)
    manifest = out / MANIFEST
    if manifest.exists():
        made = json.loads(manifest.read_text(encoding="utf-8"))
        fingerprint = resolve(model_dir, False, import_chattts().Chat()).info.fingerprint
        if (made.get("version"), made.get("weights"), made["source"].get("fingerprint")) == (
            FORMAT_VERSION,
            weights,
            fingerprint,
        ):
            return out
        shutil.rmtree(out)
    return export(model_dir, out, weights=weights)


def check_export_dir(out_dir: str | Path) -> None:
    """Refuse to export into a folder that holds something else than an earlier export."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ModelLoadError(
            f"{out} is not empty and holds no earlier export: choose an empty folder",
            code="bad_output_dir",
        )
