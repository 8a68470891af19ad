"""The engine on the real ``chattts`` package (PyTorch).

One ``ChatTTS.Chat`` per engine. What both engines share — checks, segments, voices, streaming,
batching — is :class:`~.pipeline.PipelineEngine`; this module supplies the model work on
ChatTTS's own torch modules, all of it on the engine's one model thread
(:class:`~.batching.Batcher`): the GPT steps of all requests (:class:`~.torch_step.TorchGPT`),
and between them each request's decoding (DVAE decoder + Vocos) and reference-clip encoding.
Refining text uses ChatTTS's own text GPT loop, one request at a time.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .base import CancelToken, SynthesisRequest
from .errors import ModelLoadError
from .loader import build_config, resolve
from .pipeline import SAMPLE_RATE, EngineConfig, PipelineEngine, Prepared, VoiceModel
from .speakers import SpeakerStats
from .voices import spk_emb_from_seed

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch is imported when an engine is loaded, not with this module
    from .batching import Batcher
    from .torch_step import TorchGPT

T = TypeVar("T")

__all__ = ["SAMPLE_RATE", "ChatTTSEngine", "EngineConfig", "select_device"]


class _RequestContext:
    """ChatTTS's interrupt context, answering from one request's cancel token."""

    def __init__(self, token: CancelToken) -> None:
        self._token = token

    def get(self) -> bool:
        return self._token.cancelled

    def set(self, value: bool) -> None:
        if value:
            self._token.cancel()


def import_chattts() -> Any:
    """The ``ChatTTS`` package, or :class:`ModelLoadError` saying how to install it."""
    try:
        import ChatTTS
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            f"the torch engine needs PyTorch and ChatTTS ({exc}): pip install "
            "'chattts-server[torch]', or serve an export with --engine onnx --onnx-dir DIR",
            code="missing_dependency",
        ) from exc
    return ChatTTS


def select_device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            "device 'cuda' was asked for but torch sees no CUDA device", code="device_unavailable"
        )
    if name != "cpu" and not name.startswith("cuda"):
        raise ModelLoadError(f"unknown device {name!r}; use auto, cpu or cuda", code="bad_device")
    return torch.device(name)


class ChatTTSEngine(PipelineEngine):
    """:class:`~.base.Engine` on ``ChatTTS.Chat``."""

    name = "chattts"

    def __init__(self, config: EngineConfig | None = None, batcher: Batcher | None = None) -> None:
        super().__init__(config, batcher)
        self._chat: Any = None
        self._lock = threading.Lock()  # refine text: ChatTTS's own loop, one at a time
        self.packed = False

    def _thread_name(self) -> str:
        return "chattts-torch"

    # --- model work (model thread) -------------------------------------------------------

    def _load_model(self) -> None:
        ChatTTS = import_chattts()
        import transformers

        # ChatTTS 0.2.5 passes past_key_values, which transformers 5.x warns about per call.
        warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
        transformers.logging.set_verbosity_error()
        device = select_device(self.config.device)
        chat = ChatTTS.Chat(logging.getLogger("ChatTTS"))
        resolved = resolve(self.config.model_dir, self.config.allow_download, chat)
        chat.config = build_config(resolved.config_overrides)
        log.info("device %s chosen (asked: %s)", device, self.config.device)
        try:
            ok = chat._load(device=device, compile=False, **resolved.paths())
        except Exception as exc:
            raise ModelLoadError(
                f"loading the weights in {resolved.root} failed: {exc}", code="model_load_failed"
            ) from exc
        if not ok:
            raise ModelLoadError(f"ChatTTS did not finish loading {resolved.root}")
        if self.config.precompute_weight_norm:
            _freeze_weight_norm(chat)
        _set_gpt_precision(chat, self.config.gpt_dtype, device)
        self.packed = self._pack(chat, device)
        self.parts = self._gpt_parts(chat)
        gpt = chat.config.gpt
        self._voices = VoiceModel(
            SpeakerStats.from_spk_stat(chat.config.spk_stat),
            int(gpt.num_vq),
            int(gpt.num_audio_tokens),
        )
        self._chat, self._model, self._device = chat, resolved.info, str(device)
        log.info("model loaded from %s (%s)", resolved.root, resolved.info.source)

    def _unload(self) -> None:
        self._chat = None

    def _pack(self, chat: Any, device: Any) -> bool:
        from .torch_step import pack_linears, packing_available

        if not self.config.pack_weights or device.type != "cpu":
            return False
        if not packing_available():
            log.warning("oneDNN packed linear layers unavailable: default torch kernels")
            return False
        n = pack_linears(chat.gpt.gpt)
        log.info("%d GPT linear layers packed for oneDNN", n)
        return n > 0

    def _gpt_parts(self, chat: Any) -> TorchGPT:
        import torch
        from ChatTTS.model.processors import gen_logits

        from .batching import Sampling
        from .torch_step import PackedLinear, StepModel, TorchGPT

        vq = int(chat.config.gpt.num_vq)
        eos = int(chat.config.gpt.num_audio_tokens) - 1
        heads = torch.nn.Linear(chat.embed.model_dim, 1, bias=False)
        with torch.no_grad():  # the four code heads as one matrix, weight norm applied once
            weight = torch.cat([h.weight.detach() for h in chat.embed.head_code])
            heads.weight = torch.nn.Parameter(weight, requires_grad=False)
        head: Any = PackedLinear(heads) if self.packed else heads
        emb_code = chat.embed.emb_code

        def embed_code(ids: Any) -> Any:
            return torch.stack([emb_code[i](ids[:, i]) for i in range(vq)], 2).sum(2)

        def logits(hidden: Any) -> Any:
            return head(hidden).view(hidden.shape[0], vq, -1)

        def processors(s: Sampling) -> list[Any]:
            warpers, procs = gen_logits(eos, s.top_p, s.top_k, s.repetition_penalty)
            return [*procs, *warpers]

        return TorchGPT(StepModel(chat.gpt.gpt), embed_code, logits, processors, eos, vq)

    def _in_session(self, fn: Callable[..., T], *args: Any) -> T:
        return _inference_mode(fn, *args)

    def _prompt(self, text: str, p: Prepared, spk_smp: str | None, txt_smp: str | None) -> Any:
        """The GPT prompt's embeddings [positions, hidden], built as ``Chat._infer_code`` does."""
        from . import text as textprep

        chat, r = self._chat, p.request
        vq = chat.config.gpt.num_vq
        prompt = f"[speed_{textprep.speed_to_level(r.speed)}]"
        texts = chat.speaker.decorate_code_prompts([text], prompt, txt_smp, p.voice.spk_emb)
        smp = chat.speaker.decode_prompt(spk_smp) if spk_smp is not None else None
        input_ids, _, text_mask = chat.tokenizer.encode(
            texts, vq, prompt=smp, device=chat.device_gpt
        )
        emb = chat.embed(input_ids, text_mask)
        if p.voice.spk_emb is not None:
            chat.speaker.apply(
                emb, p.voice.spk_emb, input_ids, chat.tokenizer.spk_emb_ids, chat.gpt.device_gpt
            )
        return emb[0]

    def _decode(self, hidden: Any) -> np.ndarray:
        return np.asarray(self._chat._decode_to_wavs([hidden], True)[0])

    def _encode_clip(self, pcm: np.ndarray) -> str:
        return str(self._chat.sample_audio_speaker(pcm))

    def _normalizer(self) -> Any:
        return self._chat.normalizer

    def _seed_speaker(self, seed: int) -> str:
        return spk_emb_from_seed(seed, self._chat.speaker)

    # --- refining text ------------------------------------------------------------------

    def _refine(self, text: str, r: SynthesisRequest, token: CancelToken) -> str:
        import ChatTTS

        chat = self._chat
        params = ChatTTS.Chat.RefineTextParams(
            prompt=r.refine_prompt, manual_seed=r.manual_seed, show_tqdm=False
        )
        with self._lock:  # ChatTTS's loop: one interrupt context and generator per Chat
            previous, chat.context = chat.context, _RequestContext(token)
            try:  # a long loop: in a thread of its own, not between the batched GPT steps; the
                # thread ends afterwards, and its OpenMP workers with it
                refined = _in_new_thread(chat._refine_text, text, chat.device, params)
            finally:  # the request's token (cancelled when it ends) must not outlive it
                chat.context = previous
        ids = [i[i.less(chat.tokenizer.break_0_ids)] for i in refined.ids]
        out = chat.tokenizer.decode(ids)[0]
        return str(out) if out.strip() else text


def _inference_mode(fn: Callable[..., T], *args: Any) -> T:
    import torch

    with torch.inference_mode():
        return fn(*args)


def _in_new_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on a short-lived thread and return its result (or raise its error)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(_inference_mode(fn, *args))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name="chattts-refine")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _set_gpt_precision(chat: Any, dtype: str, device: Any) -> None:
    import torch

    if dtype == "bfloat16":
        chat.gpt.gpt.to(torch.bfloat16)
    elif dtype == "int8":
        if device.type != "cpu":
            raise ModelLoadError("gpt_dtype int8 is for the CPU; use bfloat16 on CUDA",
                                 code="bad_dtype")  # fmt: skip
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch.ao.quantization is deprecated from torch 2.10
            warnings.simplefilter("ignore", DeprecationWarning)
            quantize_dynamic(chat.gpt.gpt, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def _freeze_weight_norm(chat: Any) -> None:
    """Compute the output heads' weight-normed weights once instead of on every GPT step.

    Same values bit for bit: the parametrization's own function is evaluated once and kept."""
    import torch.nn.utils.parametrize as P

    for head in (*chat.embed.head_code, chat.embed.head_text):
        if P.is_parametrized(head, "weight"):
            P.remove_parametrizations(head, "weight", leave_parametrized=True)
