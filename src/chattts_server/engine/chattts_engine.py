"""The engine on the real ``chattts`` package.

One ``ChatTTS.Chat`` per engine. Syntheses run concurrently, each iterated on its caller's
thread, while all heavy model work runs on the engine's one torch thread
(:class:`~.batching.Batcher`): the GPT steps of all requests, batched, and between them each
request's decoding (DVAE decoder + Vocos) and reference-clip encoding. The batcher checks each
request's cancel token between steps, so cancelling one request never stops another. Text is
split into segments (see :mod:`.text`) that are synthesized one after another, each yielded as
soon as it is decoded. Streaming and non-streaming share this path, so they give the same
samples. Refining text uses ChatTTS's own text GPT loop, one request at a time.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from . import limits
from . import text as textprep
from .base import (
    AudioChunk,
    CancelToken,
    EngineInfo,
    ModelInfo,
    Synthesis,
    SynthesisRequest,
    SynthesisStats,
)
from .errors import (
    EngineNotReadyError,
    InvalidInputError,
    ModelLoadError,
    SynthesisCancelledError,
    SynthesisError,
)
from .loader import build_config, resolve
from .stream import WindowDecoder
from .voices import (
    Voice,
    check_one_source,
    check_ref_tokens,
    check_seed,
    check_spk_emb,
    decode_reference,
    spk_emb_from_seed,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch is imported when an engine is made, not with this module
    from .batching import Batcher, GPTParts

T = TypeVar("T")
SAMPLE_RATE = 24000


@dataclass(frozen=True)
class EngineConfig:
    """Engine limits and sources; the server's ``Settings`` map onto these."""

    model_dir: str | None = None
    allow_download: bool = False
    device: str = "auto"
    max_text_chars: int = 4000
    max_segment_chars: int = 120
    max_new_tokens: int = 2048
    max_ref_audio_bytes: int = 10 * 1024 * 1024
    max_ref_audio_seconds: float = 30.0
    warmup: bool = True
    # incremental streaming (requests with ``incremental=True``), in GPT steps of 512 samples
    stream_first_tokens: int = 1  # first audio after first + lookahead GPT steps (20)
    stream_chunk_tokens: int = 64  # chunks double from the first up to this
    stream_context_tokens: int = 56  # ≥ the decoders' receptive field (~52 tokens): exact left edge
    # right edge: with trained-like decoders the boundary error is 24% of the RMS at 8 tokens
    # of lookahead, 0.23% at 16, 0.02% at 20 (bench/results/speed.md); 19 keeps it under 0.1%
    # (tiny-model guard, bound 0.2%) with the first audio after 20 steps, under 0.2x stock's
    stream_lookahead_tokens: int = 19
    precompute_weight_norm: bool = True  # ChatTTS recomputes its heads' weight norm every step
    # GPT weights: float32 (exact), bfloat16, or int8 (dynamic weight quantization of its
    # Linear layers; the step is memory-bound, so 4× fewer bytes is ~3× faster on CPU)
    gpt_dtype: Literal["float32", "bfloat16", "int8"] = "float32"
    # continuous batching: up to this many requests share each GPT step
    max_batch: int = 4
    # CPU: run the GPT's linear layers on oneDNN with pre-packed weights (faster, and each
    # row's result independent of the batch); falls back to torch's default when unavailable
    pack_weights: bool = True


class _RequestContext:
    """ChatTTS's interrupt context, answering from one request's cancel token."""

    def __init__(self, token: CancelToken) -> None:
        self._token = token

    def get(self) -> bool:
        return self._token.cancelled

    def set(self, value: bool) -> None:
        if value:
            self._token.cancel()


@dataclass(frozen=True)
class _Prepared:
    request: SynthesisRequest
    segments: list[textprep.Segment]
    voice: Voice
    lang: str
    max_new_tokens: int
    min_new_tokens: int


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


class ChatTTSEngine:
    """:class:`~.base.Engine` on ``ChatTTS.Chat``."""

    def __init__(self, config: EngineConfig | None = None, batcher: Batcher | None = None) -> None:
        """``batcher``: share another engine's torch thread (benchmarks comparing models in one
        process); by default the engine has its own."""
        self.config = config or EngineConfig()
        self._chat: Any = None
        self._warm = False  # loaded and warmed up: what ``ready`` reports
        self._model: ModelInfo | None = None
        self._device = "unloaded"
        self._lock = threading.Lock()  # refine text: ChatTTS's own loop, one at a time
        from .batching import Batcher

        self._owns_batcher = batcher is None
        self._batcher = batcher or Batcher(self.config.max_batch)
        self.parts: GPTParts | None = None
        self._normalizers: dict[str, str] = {}
        self.packed = False

    # --- Engine protocol -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded and warmed up (the warm-up itself runs on the loaded model before this)."""
        return self._chat is not None and self._warm

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name="chattts",
            sample_rate=SAMPLE_RATE,
            languages=("zh", "en"),
            device=self._device,
            max_text_chars=self.config.max_text_chars,
            max_segment_chars=self.config.max_segment_chars,
            max_ref_text_chars=self.config.max_segment_chars * limits.REF_TEXT_SEGMENTS,
            max_new_tokens=self.config.max_new_tokens,
            speed_range=limits.SPEED,
            control_tokens=textprep.CONTROL_TOKENS,
            model=self._model,
        )

    @property
    def normalizers(self) -> dict[str, str]:
        """Which number normaliser serves each language (``builtin`` when none is installed)."""
        return dict(self._normalizers)

    def load(self) -> None:
        # on the torch thread: the weights, warm-up and every later step share one thread
        self._batcher.call(self._load)
        if self.config.warmup:
            self._warm_up()
        self._warm = True

    def _load(self) -> None:
        import ChatTTS
        import transformers

        # ChatTTS 0.2.5 passes past_key_values, which transformers 5.x warns about per call.
        warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
        transformers.logging.set_verbosity_error()
        started = time.perf_counter()
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
        if self._owns_batcher:
            self._batcher.parts = self.parts
        self._register_normalizers(chat)
        self._chat, self._model, self._device = chat, resolved.info, str(device)
        log.info(
            "model loaded from %s (%s) in %.2fs",
            resolved.root,
            resolved.info.source,
            time.perf_counter() - started,
        )

    def close(self) -> None:
        self._chat = None
        self._warm = False
        if self._owns_batcher:
            self._batcher.close()

    @property
    def batcher(self) -> Batcher:
        """The torch thread: the batched GPT step loop shared by all requests, and all other
        model work (decoding, reference encoding) between its steps."""
        return self._batcher

    def _pack(self, chat: Any, device: Any) -> bool:
        from .batching import pack_linears, packing_available

        if not self.config.pack_weights or device.type != "cpu":
            return False
        if not packing_available():
            log.warning("oneDNN packed linear layers unavailable: default torch kernels")
            return False
        n = pack_linears(chat.gpt.gpt)
        log.info("%d GPT linear layers packed for oneDNN", n)
        return n > 0

    def _gpt_parts(self, chat: Any) -> GPTParts:
        import torch
        from ChatTTS.model.processors import gen_logits

        from .batching import GPTParts, PackedLinear, Sampling, StepModel

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

        return GPTParts(StepModel(chat.gpt.gpt), embed_code, logits, processors, eos, vq)

    def synthesize(self, request: SynthesisRequest) -> Synthesis:
        if self._chat is None:
            raise EngineNotReadyError("the model is not loaded yet")
        prepared = self._prepare(request)
        stats = SynthesisStats(segments=len(prepared.segments))
        token = CancelToken()
        return Synthesis(self._run(prepared, stats, token), stats, token)

    def speaker_for_seed(self, seed: int) -> str:
        """The speaker string (``spk_emb``) a voice seed stands for, with these weights."""
        if self._chat is None:
            raise EngineNotReadyError("the model is not loaded yet")
        return spk_emb_from_seed(check_seed(seed, "seed"), self._chat.speaker)

    def check_speaker(self, spk_emb: object, field: str = "spk_emb") -> str:
        """Validate a speaker string for this model (raises :class:`InvalidInputError`)."""
        if self._chat is None:
            raise EngineNotReadyError("the model is not loaded yet")
        return check_spk_emb(spk_emb, self._chat.speaker.dim, self._chat.speaker, field)

    def check_reference_tokens(self, ref_tokens: object, field: str = "ref_tokens") -> str:
        """Validate an encoded reference clip for this model (:meth:`encode_reference`)."""
        if self._chat is None:
            raise EngineNotReadyError("the model is not loaded yet")
        return check_ref_tokens(ref_tokens, self._chat, field)

    def encode_reference(self, ref_audio: bytes) -> str:
        """Encode a reference clip into ChatTTS prompt tokens (``spk_smp``), reusable later as
        ``SynthesisRequest.ref_tokens``. Runs the DVAE encoder on the torch thread."""
        chat = self._chat
        if chat is None:
            raise EngineNotReadyError("the model is not loaded yet")
        pcm = self._reference_pcm(ref_audio)
        return str(self._batcher.call(_inference_mode, chat.sample_audio_speaker, pcm))

    def _reference_pcm(self, ref_audio: bytes) -> np.ndarray:
        return decode_reference(
            ref_audio,
            sample_rate=SAMPLE_RATE,
            max_bytes=self.config.max_ref_audio_bytes,
            max_seconds=self.config.max_ref_audio_seconds,
        )

    # --- validation --------------------------------------------------------------------------

    def _prepare(self, r: SynthesisRequest) -> _Prepared:
        cfg, chat = self.config, self._chat
        text = textprep.validate_text(r.text, max_chars=cfg.max_text_chars)
        _check_number(r.speed, "speed", *limits.SPEED)
        _check_number(r.temperature, "temperature", *limits.TEMPERATURE)
        _check_number(r.top_p, "top_p", *limits.TOP_P)
        _check_int(r.top_k, "top_k", *limits.TOP_K)
        asked = None if r.lang is None else textprep.normalize_language(r.lang)
        if not isinstance(r.refine_text, bool):
            raise InvalidInputError(
                "refine_text must be a boolean", code="invalid_type", field="refine_text"
            )
        textprep.validate_refine_prompt(r.refine_prompt)
        _check_int(r.pauses.comma_ms, "pauses.comma", *limits.PAUSE_MS)
        _check_int(r.pauses.period_ms, "pauses.period", *limits.PAUSE_MS)
        manual_seed = None if r.manual_seed is None else check_seed(r.manual_seed, "manual_seed")
        max_new = cfg.max_new_tokens
        if r.max_new_tokens is not None:
            max_new = _check_int(r.max_new_tokens, "max_new_tokens", 1, cfg.max_new_tokens)
        # at least min_new_tokens steps, never more than the segment's limit
        min_new = _check_int(r.min_new_tokens, "min_new_tokens", 0, cfg.max_new_tokens)

        check_one_source(
            [n for n in ("seed", "spk_emb", "ref_audio", "ref_tokens") if getattr(r, n) is not None]
        )
        has_ref = r.ref_audio is not None or r.ref_tokens is not None
        if r.ref_text is not None and not has_ref:
            raise InvalidInputError(
                "ref_text needs ref_audio", code="missing_field", field="ref_audio"
            )
        if has_ref:
            if r.ref_text is None:
                raise InvalidInputError(
                    "a reference clip needs its transcript in ref_text",
                    code="missing_field",
                    field="ref_text",
                )
            ref_text = textprep.validate_text(
                r.ref_text, max_chars=self.info.max_ref_text_chars, field="ref_text"
            )
        if r.ref_tokens is not None:
            voice = Voice(ref_tokens=check_ref_tokens(r.ref_tokens, chat), ref_text=ref_text)
        elif r.ref_audio is not None:
            voice = Voice(ref_pcm=self._reference_pcm(r.ref_audio), ref_text=ref_text)
        elif r.spk_emb is not None:
            voice = Voice(spk_emb=check_spk_emb(r.spk_emb, chat.speaker.dim, chat.speaker))
        else:
            if r.seed is not None:
                seed = check_seed(r.seed, "seed")
            else:  # no voice: reproducible from manual_seed, else random (reported in stats)
                seed = manual_seed if manual_seed is not None else secrets.randbelow(2**31)
            voice = Voice(spk_emb=spk_emb_from_seed(seed, chat.speaker), seed=seed)

        segments = textprep.split_segments(
            text,
            max_chars=cfg.max_segment_chars,
            comma_pause_ms=r.pauses.comma_ms,
            period_pause_ms=r.pauses.period_ms,
        )
        lang = asked or textprep.detect_language(text)
        segments = self._normalize_segments(segments, lang)
        return _Prepared(r, segments, voice, lang, max_new, min(min_new, max_new))

    def _normalize_segments(
        self, segments: list[textprep.Segment], lang: str
    ) -> list[textprep.Segment]:
        """Normalize now, so text ChatTTS cannot speak (emoji only, symbols) is a 400, not a
        silent empty result; a dropped segment's pause moves to the one before."""
        out: list[textprep.Segment] = []
        for seg in segments:
            text = self._normalize(seg.text, lang)
            if textprep.speakable(text):
                out.append(textprep.Segment(text, seg.pause_after_ms))
            elif out:
                prev = out[-1]
                out[-1] = textprep.Segment(prev.text, prev.pause_after_ms + seg.pause_after_ms)
        if not out:
            raise InvalidInputError(
                "text has nothing ChatTTS can speak (it reads Chinese and English)",
                code="nothing_to_speak",
                field="text",
            )
        out[-1] = textprep.Segment(out[-1].text, 0)
        return out

    # --- synthesis ---------------------------------------------------------------------------

    def _run(self, p: _Prepared, stats: SynthesisStats, token: CancelToken) -> Iterator[AudioChunk]:
        import torch

        with torch.inference_mode():
            chat = self._chat
            if chat is None:
                raise EngineNotReadyError("the engine was closed")
            spk_smp = p.voice.ref_tokens
            if p.voice.ref_pcm is not None:
                spk_smp = self._batcher.call(
                    _inference_mode, chat.sample_audio_speaker, p.voice.ref_pcm
                )
            txt_smp = self._normalize(p.voice.ref_text, p.lang) if spk_smp else None
            n = len(p.segments)
            for i, segment in enumerate(p.segments):
                if token.cancelled:
                    break
                pieces = None
                try:
                    pieces = self._segment(chat, p, segment.text, spk_smp, txt_smp, token)
                    while True:
                        try:
                            wav = next(pieces)
                        except StopIteration as end:
                            tokens = int(end.value)
                            break
                        if token.cancelled:
                            break
                        stats.samples += wav.size
                        yield AudioChunk(wav, i, n, "speech")
                except Exception as exc:
                    if token.cancelled:
                        break
                    log.exception("synthesis failed in segment %d", i)
                    raise SynthesisError(f"the model failed: {type(exc).__name__}") from exc
                finally:
                    if pieces is not None:
                        pieces.close()
                if token.cancelled:
                    break
                stats.tokens.append(tokens)
                if tokens >= p.max_new_tokens:
                    log.warning("segment %d stopped at the token limit (%d)", i, tokens)
                    stats.truncated_segments.append(i)
                stats.segments_done += 1
                if segment.pause_after_ms:
                    silence = np.zeros(SAMPLE_RATE * segment.pause_after_ms // 1000, np.float32)
                    stats.samples += silence.size
                    yield AudioChunk(silence, i, n, "pause")
            if token.cancelled:
                stats.cancelled = True
                raise SynthesisCancelledError("synthesis cancelled")

    def _segment(
        self,
        chat: Any,
        p: _Prepared,
        text: str,
        spk_smp: str | None,
        txt_smp: str | None,
        token: CancelToken,
    ) -> Generator[np.ndarray, None, int]:
        """Yield the segment's audio (whole, or in pieces when incremental); return its tokens."""
        from .batching import Generation, Sampling

        r, cfg = p.request, self.config
        if r.refine_text:
            text = self._refine(chat, text, r, token)
        batcher = self._batcher
        emb = batcher.call(_inference_mode, self._prompt, chat, text, p, spk_smp, txt_smp)
        sampling = Sampling(
            temperature=r.temperature,
            top_p=r.top_p,
            top_k=r.top_k,
            min_new_tokens=p.min_new_tokens,
            max_new_tokens=p.max_new_tokens,
            manual_seed=r.manual_seed,
        )
        gen = Generation(emb, sampling, cancelled=lambda: token.cancelled, parts=self.parts)
        batcher.enqueue(gen)
        decoder = WindowDecoder(
            lambda hidden: batcher.call(chat._decode_to_wavs, [hidden], True)[0],
            first=cfg.stream_first_tokens,
            chunk=cfg.stream_chunk_tokens,
            context=cfg.stream_context_tokens,
            lookahead=cfg.stream_lookahead_tokens,
        )
        try:
            # streamed: hidden states as soon as the decoder can emit; whole: at the end
            for hidden, final in gen.updates(decoder.wants if r.incremental else None):
                if final and (hidden.shape[0] == 0 or gen.finish_reason == "cancelled"):
                    return int(hidden.shape[0])
                yield from decoder.push(hidden, final=final)
                if final:
                    return int(hidden.shape[0])
            return 0  # not reached: updates() always ends with final
        finally:
            gen.stop()

    def _prompt(
        self, chat: Any, text: str, p: _Prepared, spk_smp: str | None, txt_smp: str | None
    ) -> Any:
        """The GPT prompt's embeddings [positions, hidden], built as ``Chat._infer_code`` does."""
        r = p.request
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

    def _refine(self, chat: Any, text: str, r: SynthesisRequest, token: CancelToken) -> str:
        import ChatTTS

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

    def _normalize(self, text: str, lang: str) -> str:
        chat = self._chat
        if self._normalizers.get(lang) == "builtin":
            text = textprep.spell_numbers(text, lang)
        return str(chat.normalizer(text, True, True, lang))

    def _register_normalizers(self, chat: Any) -> None:
        """Use WeTextProcessing (zh) / nemo_text_processing (en) when installed."""
        self._normalizers = {"zh": "builtin", "en": "builtin"}

        def zh() -> Any:
            from tn.chinese.normalizer import Normalizer

            return Normalizer(overwrite_cache=False).normalize

        def en() -> Any:
            from nemo_text_processing.text_normalization.normalize import Normalizer

            return Normalizer(input_case="cased", lang="en").normalize

        for lang, name, make in (
            ("zh", "WeTextProcessing", zh),
            ("en", "nemo_text_processing", en),
        ):
            try:
                normalize = make()
            except ImportError:
                log.info("%s not installed: built-in number reading for %s", name, lang)
                continue
            except Exception as exc:  # installed, but it would not build
                log.warning("%s failed to start (%s): built-in number reading for %s",
                            name, exc, lang)  # fmt: skip
                continue
            if chat.normalizer.register(lang, normalize):
                self._normalizers[lang] = name

    def _warm_up(self) -> None:
        """Pay numba JIT and first-call costs at load, not on the first request."""
        started = time.perf_counter()
        for text in ("你好，世界。", "Hello 42."):
            req = SynthesisRequest(text=text, seed=0, manual_seed=0, max_new_tokens=4)
            for _ in self.synthesize(req):
                pass
        log.info("warm-up done in %.2fs", time.perf_counter() - started)


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


def _check_number(value: object, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{field} must be a number", code="invalid_type", field=field)
    if not (lo <= float(value) <= hi):  # also refuses NaN
        raise InvalidInputError(
            f"{field} must be between {lo:g} and {hi:g}, got {value!r}",
            code="out_of_range",
            field=field,
        )
    return float(value)


def _check_int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{field} must be an integer", code="invalid_type", field=field)
    if not lo <= value <= hi:
        raise InvalidInputError(
            f"{field} must be between {lo} and {hi}, got {value}", code="out_of_range", field=field
        )
    return value
