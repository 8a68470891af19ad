"""What both engines share: request checks, segments, voices, streaming, the batcher.

:class:`PipelineEngine` is the :class:`~.base.Engine` protocol for a ChatTTS model whatever runs
it. It validates a request eagerly, splits its text into segments and normalizes them, resolves
its voice (a seed, a speaker string, a reference clip), and for each segment builds the GPT
prompt, hands it to the :class:`~.batching.Batcher` as a :class:`~.batching.Generation`, and
decodes its hidden states — whole, or window by window when streaming (:mod:`.stream`). The
model work itself comes from a subclass, always called on the batcher's one model thread:

- :class:`~.chattts_engine.ChatTTSEngine` — the ``chattts`` package on PyTorch;
- :class:`~.onnx.engine.OnnxEngine` — an ONNX export on ONNX Runtime, torch-free.

Nothing here imports torch: a subclass's hooks do.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

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
from .batching import Batcher, Generation, GPTParts, Sampling
from .errors import (
    EngineNotReadyError,
    InvalidInputError,
    SynthesisCancelledError,
    SynthesisError,
)
from .speakers import SpeakerStats, decode_prompt, decode_spk_emb
from .stream import WindowDecoder
from .voices import Voice, check_one_source, check_seed, decode_reference

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
EngineKind = Literal["torch", "onnx"]


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
    # which engine runs the model: ChatTTS on PyTorch, or an ONNX export (``onnx_dir``, made by
    # ``chattts-server export-onnx``) on ONNX Runtime without torch
    engine: EngineKind = "torch"
    onnx_dir: str | None = None


@dataclass(frozen=True)
class VoiceModel:
    """What voices need of the loaded weights."""

    speaker: SpeakerStats  # the speaker statistics (spk_stat): seed voices, checks
    num_vq: int  # codebooks per audio token
    num_audio_tokens: int  # audio-token ids are below this


@dataclass(frozen=True)
class Prepared:
    """A validated request: its segments (normalized), voice, language and token limits."""

    request: SynthesisRequest
    segments: list[textprep.Segment]
    voice: Voice
    lang: str
    max_new_tokens: int
    min_new_tokens: int


class PipelineEngine(ABC):
    """:class:`~.base.Engine` for ChatTTS; subclasses supply the model work (see the module
    docstring). Every hook marked *model thread* runs on the batcher's thread."""

    name = "chattts"

    def __init__(self, config: EngineConfig | None, batcher: Batcher | None) -> None:
        """``batcher``: share another engine's model thread (benchmarks comparing models in
        one process); by default the engine has its own."""
        self.config = config or EngineConfig()
        self._loaded = False
        self._warm = False  # loaded and warmed up: what ``ready`` reports
        self._model: ModelInfo | None = None
        self._device = "unloaded"
        self._voices: VoiceModel | None = None
        self._normalizers: dict[str, str] = {}
        # a seed's speaker string costs ~45 ms (ChatTTS's LZMA preset 9 extreme): kept per seed
        self._seed_voice = functools.lru_cache(maxsize=4096)(self._seed_speaker)
        self._owns_batcher = batcher is None
        self._batcher = batcher or Batcher(self.config.max_batch, name=self._thread_name())
        self.parts: GPTParts | None = None

    # --- hooks -------------------------------------------------------------------------------

    def _thread_name(self) -> str:
        return "chattts-model"

    @abstractmethod
    def _load_model(self) -> None:
        """*Model thread.* Load the weights; set ``parts``, ``_voices``, ``_model``,
        ``_device``; raise :class:`~.errors.ModelLoadError` with advice."""

    @abstractmethod
    def _unload(self) -> None:
        """Drop the model."""

    @abstractmethod
    def _prompt(self, text: str, p: Prepared, spk_smp: str | None, txt_smp: str | None) -> Any:
        """*Model thread.* The GPT prompt's embeddings [positions, hidden] for one segment,
        built as ChatTTS's ``Chat._infer_code`` does."""

    @abstractmethod
    def _decode(self, hidden: Any) -> np.ndarray:
        """*Model thread.* Hidden states [T, hidden] → float32 samples (DVAE decoder, Vocos)."""

    @abstractmethod
    def _encode_clip(self, pcm: np.ndarray) -> str:
        """*Model thread.* A 24 kHz clip → encoded reference tokens (ChatTTS ``spk_smp``)."""

    @abstractmethod
    def _normalizer(self) -> Any:
        """ChatTTS's text normalizer (``__call__(text, True, True, lang)``, ``register``)."""

    @abstractmethod
    def _seed_speaker(self, seed: int) -> str:
        """The speaker string a voice seed stands for with these weights."""

    def _refine(self, text: str, r: SynthesisRequest, token: CancelToken) -> str:
        """Rewrite ``text`` with ChatTTS's text GPT (``refine_text``); engines without it
        refuse the request in :meth:`_check_engine_options`."""
        return text

    def _check_engine_options(self, r: SynthesisRequest) -> None:
        """Refuse what this engine cannot do (raise :class:`InvalidInputError`)."""
        return None

    def _in_session(self, fn: Callable[..., Any], *args: Any) -> Any:
        """*Model thread.* Run ``fn`` in the model's session (``torch.inference_mode``)."""
        return fn(*args)

    # --- Engine protocol -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Loaded and warmed up (the warm-up itself runs on the loaded model before this)."""
        return self._loaded and self._warm

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name=self.name,
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

    @property
    def batcher(self) -> Batcher:
        """The model thread: the batched GPT step loop shared by all requests, and all other
        model work (decoding, reference encoding) between its steps."""
        return self._batcher

    def load(self) -> None:
        started = time.perf_counter()
        # on the model thread: the weights, warm-up and every later step share one thread
        self._batcher.call(self._load_model)
        if self._owns_batcher:
            self._batcher.parts = self.parts
        self._register_normalizers()
        self._loaded = True
        log.info("%s engine loaded in %.2fs", self.name, time.perf_counter() - started)
        if self.config.warmup:
            self._warm_up()
        self._warm = True

    def close(self) -> None:
        """Stop taking requests, end the model thread (running generations fail), then drop
        the model; with a shared thread, the model is dropped between two of its steps."""
        self._loaded = self._warm = False
        if self._owns_batcher:
            self._batcher.close()
            self._unload()
            self._batcher.parts = None
        else:
            self._batcher.call(self._unload)
        self.parts = None

    def add_step_listener(self, listener: Callable[[int, float], None]) -> None:
        """Call ``listener(rows, seconds)`` after every batched GPT step (on the model thread)."""
        if listener not in self._batcher.listeners:
            self._batcher.listeners.append(listener)

    def remove_step_listener(self, listener: Callable[[int, float], None]) -> None:
        if listener in self._batcher.listeners:
            self._batcher.listeners.remove(listener)

    def synthesize(self, request: SynthesisRequest) -> Synthesis:
        if not self._loaded:
            raise EngineNotReadyError("the model is not loaded yet")
        prepared = self._prepare(request)
        stats = SynthesisStats(segments=len(prepared.segments))
        token = CancelToken()
        return Synthesis(self._run(prepared, stats, token), stats, token)

    def speaker_for_seed(self, seed: int) -> str:
        """The speaker string (``spk_emb``) a voice seed stands for, with these weights."""
        self._voice_model()
        return self._seed_voice(check_seed(seed, "seed"))

    def check_speaker(self, spk_emb: object, field: str = "spk_emb") -> str:
        """Validate a speaker string for this model (raises :class:`InvalidInputError`)."""
        dim = self._voice_model().speaker.dim
        what = "a ChatTTS speaker string"
        spk_emb, arr = _decoded(spk_emb, field, decode_spk_emb, what, "invalid_spk_emb")
        if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                f"{field} must hold {dim} finite values for this model, it holds {arr.size}",
                code="invalid_spk_emb",
                field=field,
            )
        if not np.any(arr):  # ChatTTS normalizes it: all zeros would be NaN in the prompt
            raise InvalidInputError(f"{field} is all zeros", code="invalid_spk_emb", field=field)
        return spk_emb

    def check_reference_tokens(self, ref_tokens: object, field: str = "ref_tokens") -> str:
        """Validate an encoded reference clip (``spk_smp``, :meth:`encode_reference`) for this
        model: ``num_vq`` rows of audio-token ids."""
        vm = self._voice_model()
        what = "an encoded ChatTTS clip"
        ref_tokens, tokens = _decoded(ref_tokens, field, decode_prompt, what, "invalid_ref_tokens")
        if (
            tokens.ndim != 2
            or tokens.shape[0] != vm.num_vq
            or tokens.shape[1] == 0
            or int(tokens.max()) >= vm.num_audio_tokens
        ):
            raise InvalidInputError(
                f"{field} does not fit this model", code="invalid_ref_tokens", field=field
            )
        # a clip encodes to one token per 512 samples: no longer than the longest clip allowed
        longest = int(self.config.max_ref_audio_seconds * SAMPLE_RATE / 512) + 8
        if tokens.shape[1] > longest:
            raise InvalidInputError(
                f"{field} holds {tokens.shape[1]} tokens; a clip of at most "
                f"{self.config.max_ref_audio_seconds:g} s encodes to at most {longest}",
                code="invalid_ref_tokens",
                field=field,
            )
        return ref_tokens

    def encode_reference(self, ref_audio: bytes) -> str:
        """Encode a reference clip into ChatTTS prompt tokens (``spk_smp``), reusable later as
        ``SynthesisRequest.ref_tokens``. Runs the DVAE encoder on the model thread."""
        self._voice_model()
        pcm = self._reference_pcm(ref_audio)
        return str(self._batcher.call(self._in_session, self._encode_clip, pcm))

    def _voice_model(self) -> VoiceModel:
        if not self._loaded or self._voices is None:
            raise EngineNotReadyError("the model is not loaded yet")
        return self._voices

    def _reference_pcm(self, ref_audio: bytes) -> np.ndarray:
        return decode_reference(
            ref_audio,
            sample_rate=SAMPLE_RATE,
            max_bytes=self.config.max_ref_audio_bytes,
            max_seconds=self.config.max_ref_audio_seconds,
        )

    # --- validation --------------------------------------------------------------------------

    def _prepare(self, r: SynthesisRequest) -> Prepared:
        cfg = self.config
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
        self._check_engine_options(r)
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
            voice = Voice(ref_tokens=self.check_reference_tokens(r.ref_tokens), ref_text=ref_text)
        elif r.ref_audio is not None:
            voice = Voice(ref_pcm=self._reference_pcm(r.ref_audio), ref_text=ref_text)
        elif r.spk_emb is not None:
            voice = Voice(spk_emb=self.check_speaker(r.spk_emb))
        else:
            if r.seed is not None:
                seed = check_seed(r.seed, "seed")
            else:  # no voice: reproducible from manual_seed, else random (reported in stats)
                seed = manual_seed if manual_seed is not None else secrets.randbelow(2**31)
            voice = Voice(spk_emb=self._seed_voice(seed), seed=seed)

        segments = textprep.split_segments(
            text,
            max_chars=cfg.max_segment_chars,
            comma_pause_ms=r.pauses.comma_ms,
            period_pause_ms=r.pauses.period_ms,
        )
        lang = asked or textprep.detect_language(text)
        segments = self._normalize_segments(segments, lang)
        return Prepared(r, segments, voice, lang, max_new, min(min_new, max_new))

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

    def _run(self, p: Prepared, stats: SynthesisStats, token: CancelToken) -> Iterator[AudioChunk]:
        if not self._loaded:
            raise EngineNotReadyError("the engine was closed")
        spk_smp = p.voice.ref_tokens
        if p.voice.ref_pcm is not None:
            spk_smp = self._batcher.call(self._in_session, self._encode_clip, p.voice.ref_pcm)
        txt_smp = self._normalize(p.voice.ref_text, p.lang) if spk_smp else None
        n = len(p.segments)
        for i, segment in enumerate(p.segments):
            if token.cancelled:
                break
            pieces = None
            try:
                pieces = self._segment(p, segment.text, spk_smp, txt_smp, token)
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
        p: Prepared,
        text: str,
        spk_smp: str | None,
        txt_smp: str | None,
        token: CancelToken,
    ) -> Generator[np.ndarray, None, int]:
        """Yield the segment's audio (whole, or in pieces when incremental); return its tokens."""
        r, cfg = p.request, self.config
        if r.refine_text:
            text = self._refine(text, r, token)
        batcher = self._batcher
        emb = batcher.call(self._in_session, self._prompt, text, p, spk_smp, txt_smp)
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
            lambda hidden: batcher.call(self._in_session, self._decode, hidden),
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

    def _normalize(self, text: str, lang: str) -> str:
        if self._normalizers.get(lang) == "builtin":
            text = textprep.spell_numbers(text, lang)
        return str(self._normalizer()(text, True, True, lang))

    def _register_normalizers(self) -> None:
        """Use WeTextProcessing (zh) / nemo_text_processing (en) when installed."""
        self._normalizers = {"zh": "builtin", "en": "builtin"}
        normalizer = self._normalizer()

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
            if normalizer.register(lang, normalize):
                self._normalizers[lang] = name

    def _warm_up(self) -> None:
        """Pay JIT and first-call costs at load, not on the first request."""
        started = time.perf_counter()
        for text in ("你好，世界。", "Hello 42."):
            req = SynthesisRequest(text=text, seed=0, manual_seed=0, max_new_tokens=4)
            for _ in self.synthesize(req):
                pass
        log.info("warm-up done in %.2fs", time.perf_counter() - started)


def _decoded(
    value: object, field: str, decode: Callable[[str], np.ndarray], what: str, code: str
) -> tuple[str, np.ndarray]:
    """``value`` and ``decode(value)`` for a non-empty string, else :class:`InvalidInputError`
    on ``field``."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(
            f"{field} must be a non-empty string", code="invalid_type", field=field
        )
    try:
        return value, decode(value)
    except Exception as exc:
        raise InvalidInputError(f"{field} is not {what}", code=code, field=field) from exc


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
