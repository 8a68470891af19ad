"""``OnnxEngine``: ChatTTS on ONNX Runtime, without torch, transformers or chattts.

Everything a request goes through is :class:`~..pipeline.PipelineEngine`'s, shared with the
PyTorch engine: checks, segments, voices, streaming through the window decoder, continuous
batching, cancellation within one step. The model work comes from an export folder
(:mod:`.export`): the GPT, decoder and encoder graphs on ONNX Runtime (:mod:`.runtime`), the
prompt built with ``tokenizers`` and numpy (:mod:`.prompt`), ChatTTS's text normalizer
(:mod:`.normalizer`), its sampling (:mod:`.sampling`) and its speaker math
(:mod:`..speakers`: a seed gives the same speaker string as on the PyTorch engine).

Not here: ``refine_text`` (ChatTTS's text GPT is not exported; the request is refused with
``unsupported`` on ``refine_text``), CUDA (CPU execution provider only).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..base import SynthesisRequest
from ..batching import Batcher
from ..errors import InvalidInputError, ModelLoadError
from ..pipeline import EngineConfig, PipelineEngine, Prepared, VoiceModel
from ..speakers import SpeakerStats, decode_prompt, encode_prompt, normalized, spk_emb_from_seed
from ..text import speed_to_level
from .files import OnnxModel

log = logging.getLogger(__name__)


class OnnxEngine(PipelineEngine):
    """:class:`~..base.Engine` on an ONNX export (``EngineConfig.onnx_dir``)."""

    name = "chattts-onnx"

    def __init__(self, config: EngineConfig | None = None, batcher: Batcher | None = None) -> None:
        super().__init__(config, batcher)
        self._builder: Any = None
        self._norm: Any = None
        self._decoder: Any = None
        self._encoder: Any = None
        self._mel: tuple[dict[str, Any], np.ndarray] | None = None
        self._fft = (1024, 256)

    def _thread_name(self) -> str:
        return "chattts-onnx"

    def _load_model(self) -> None:
        if self.config.device not in ("auto", "cpu"):
            raise ModelLoadError(
                f"the onnx engine runs on the CPU; device {self.config.device!r} needs the torch "
                "engine",
                code="device_unavailable",
            )
        files = OnnxModel.open(self.config.onnx_dir)
        try:
            import onnxruntime  # noqa: F401
            import tokenizers
        except ImportError as exc:
            raise ModelLoadError(
                f"the onnx engine needs onnxruntime and tokenizers ({exc}): "
                "pip install 'chattts-server[onnx]'",
                code="missing_dependency",
            ) from exc
        from .normalizer import Normalizer
        from .prompt import PromptBuilder
        from .runtime import OnnxGPT, make_session

        m = files.model
        try:
            with np.load(files.path("embeddings.npz")) as npz:
                tables = {k: npz[k] for k in npz.files}
            tokenizer = tokenizers.Tokenizer.from_file(str(files.path("tokenizer.json")))
            self._builder = PromptBuilder(
                tokenizer,
                tables["emb_text"],
                tables["emb_code"],
                num_vq=int(m["num_vq"]),
                spk_emb_id=int(m["spk_emb_token"]),
            )
            self._norm = Normalizer(str(files.path("homophones_map.json")))
            gpt = make_session(str(files.path("gpt.onnx")))
            self._decoder = make_session(str(files.path("decoder.onnx")), spin=False)
            self._encoder, self._mel = None, None
            spec = m.get("encoder")
            if spec and files.path("encoder.onnx").is_file() and _mel_supported(spec):
                self._encoder = make_session(str(files.path("encoder.onnx")), spin=False)
                self._mel = (spec, tables["mel_filters"])
            parts = OnnxGPT(
                gpt,
                np.ascontiguousarray(tables["emb_code"], np.float32),
                layers=int(m["layers"]),
                kv_heads=int(m["kv_heads"]),
                head_dim=int(m["head_dim"]),
                eos=int(m["num_audio_tokens"]) - 1,
                num_vq=int(m["num_vq"]),
            )
            voices = VoiceModel(
                SpeakerStats.from_spk_stat(m["spk_stat"]),
                int(m["num_vq"]),
                int(m["num_audio_tokens"]),
            )
            fft = (int(m["n_fft"]), int(m["hop_length"]))
        except Exception as exc:  # a file or a manifest key missing or broken
            raise ModelLoadError(
                f"loading the ONNX export in {files.root} failed: {type(exc).__name__}: {exc}",
                code="model_load_failed",
            ) from exc
        defaults = EngineConfig()
        if (self.config.gpt_dtype, self.config.pack_weights) != (
            defaults.gpt_dtype,
            defaults.pack_weights,
        ):
            log.warning("gpt_dtype and pack_weights are the torch engine's: the onnx engine "
                        "runs the export's %s weights", files.weights)  # fmt: skip
        self.parts, self._voices, self._fft = parts, voices, fft
        self._model, self._device = files.info(), "cpu"
        log.info("ONNX export loaded from %s (GPT weights %s)", files.root, files.weights)

    def _unload(self) -> None:
        self._decoder = self._encoder = self._builder = self._norm = self._mel = None

    def _check_engine_options(self, r: SynthesisRequest) -> None:
        if r.refine_text:
            raise InvalidInputError(
                "refine_text needs the torch engine (ChatTTS's text model is not exported)",
                code="unsupported",
                field="refine_text",
            )
        if r.ref_audio is not None and self._encoder is None:
            raise _no_encoder()

    def _prompt(self, text: str, p: Prepared, spk_smp: str | None, txt_smp: str | None) -> Any:
        spk = p.voice.spk_emb
        return self._builder.build(
            text,
            speed_level=speed_to_level(p.request.speed),
            txt_smp=txt_smp,
            spk_emb=normalized(spk) if spk is not None else None,
            prompt_tokens=decode_prompt(spk_smp) if spk_smp is not None else None,
        )

    def _decode(self, hidden: Any) -> np.ndarray:
        from .runtime import istft

        real, imag = self._decoder.run(None, {"hidden": np.ascontiguousarray(hidden[None])})
        return istft(real[0], imag[0], *self._fft)

    def _encode_clip(self, pcm: np.ndarray) -> str:
        from .runtime import log_mel

        if self._encoder is None or self._mel is None:
            raise _no_encoder()
        spec, filters = self._mel
        (tokens,) = self._encoder.run(None, {"mel": log_mel(pcm, spec, filters)})
        return encode_prompt(tokens)

    def _normalizer(self) -> Any:
        return self._norm

    def _seed_speaker(self, seed: int) -> str:
        assert self._voices is not None
        return spk_emb_from_seed(seed, self._voices.speaker)


def _no_encoder() -> InvalidInputError:
    return InvalidInputError(
        "this ONNX export has no reference-clip encoder; use a seed or a speaker string",
        code="unsupported",
        field="ref_audio",
    )


def _mel_supported(spec: dict[str, Any]) -> bool:
    """Whether :func:`~.runtime.log_mel` computes the features this encoder was trained on
    (torchaudio's MelSpectrogram as ChatTTS configures it); else the encoder is left out."""
    ok = (
        spec.get("power") == 1.0
        and spec.get("center", True)
        and spec.get("win_length") == spec.get("n_fft")
        and spec.get("mel_scale") == "htk"
        and spec.get("norm") is None
    )
    if not ok:
        log.warning("the export's mel features (%s) are not the ones computed here: "
                    "reference clips are refused", spec)  # fmt: skip
    return bool(ok)
