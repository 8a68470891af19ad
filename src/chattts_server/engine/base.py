"""The engine interface the server drives, and the value types that cross it.

An engine turns a :class:`SynthesisRequest` into a stream of :class:`AudioChunk` (24 kHz mono
float32 PCM). ``synthesize`` returns a :class:`Synthesis`: iterate it for chunks, call
``cancel()`` from any thread to stop it, and read ``stats`` for what happened (segments done,
segments that hit the token limit, cancellation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Language = Literal["zh", "en"]
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Pauses:
    """Silence inserted after clauses (``comma``) and sentences (``period``), in milliseconds."""

    comma_ms: int = 0
    period_ms: int = 0


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis job. One voice source at most: ``seed``, ``spk_emb``, or a reference clip
    (``ref_audio`` or its encoded ``ref_tokens``, with ``ref_text``); with none, a voice is drawn
    from ``manual_seed`` when given, else at random."""

    text: str
    seed: int | None = None
    spk_emb: str | None = None
    ref_audio: bytes | None = None
    ref_tokens: str | None = None  # a clip already encoded by ``encode_reference``
    ref_text: str | None = None
    lang: str | None = None  # a BCP-47 tag for Chinese or English (zh-CN, en-US, …)
    speed: float = 1.0
    temperature: float = 0.3
    top_p: float = 0.7
    top_k: int = 20
    refine_text: bool = False
    refine_prompt: str = ""
    pauses: Pauses = field(default_factory=Pauses)
    manual_seed: int | None = None
    max_new_tokens: int | None = None  # per segment; at most the engine's limit
    min_new_tokens: int = 0  # forces a length (benchmarks: random weights rarely stop); capped
    # at the segment's token limit
    incremental: bool = False  # stream within a segment: audio every few GPT steps


@dataclass(frozen=True)
class AudioChunk:
    """A piece of audio and where it sits in the request's segments."""

    pcm: np.ndarray  # float32, mono, ``sample_rate`` Hz
    segment: int  # index of the text segment this audio belongs to
    segments: int  # total number of segments of the request
    kind: Literal["speech", "pause"] = "speech"


@dataclass
class SynthesisStats:
    """Filled in while a synthesis runs; complete once its iterator is exhausted."""

    segments: int = 0
    segments_done: int = 0
    tokens: list[int] = field(default_factory=list)
    truncated_segments: list[int] = field(default_factory=list)
    samples: int = 0
    cancelled: bool = False

    @property
    def finish_reason(self) -> FinishReason:
        """``cancelled``, ``length`` (a segment stopped at the token limit) or ``stop``."""
        if self.cancelled:
            return "cancelled"
        return "length" if self.truncated_segments else "stop"


class CancelToken:
    """A thread-safe flag a caller sets to stop one synthesis."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Synthesis:
    """Iterator over a request's audio chunks, cancellable from another thread."""

    def __init__(
        self, chunks: Iterator[AudioChunk], stats: SynthesisStats, token: CancelToken
    ) -> None:
        self._chunks = chunks
        self.stats = stats
        self._token = token

    def __iter__(self) -> Iterator[AudioChunk]:
        return self._chunks

    def __next__(self) -> AudioChunk:
        return next(self._chunks)

    def cancel(self) -> None:
        """Ask the engine to stop; generation stops within one GPT step."""
        self._token.cancel()

    def close(self) -> None:
        """Cancel and release the generator (safe to call more than once)."""
        self._token.cancel()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class ModelInfo:
    source: str  # "model-dir", "hub" or "test-model"
    path: str
    is_test_model: bool
    size: str | None  # test models: "tiny" | "full"
    fingerprint: str  # sha256 over the weights manifest: identifies the weights


@dataclass(frozen=True)
class EngineInfo:
    """What the engine can do."""

    name: str
    sample_rate: int
    languages: tuple[str, ...]
    device: str
    max_text_chars: int
    max_segment_chars: int
    max_ref_text_chars: int
    max_new_tokens: int
    speed_range: tuple[float, float]
    control_tokens: tuple[str, ...]
    model: ModelInfo | None


StepListener = Callable[[int, float], None]


@runtime_checkable
class Engine(Protocol):
    """What the server needs from a speech engine: synthesis, voices, metrics hooks. The server
    knows engines only through this (``ChatTTSEngine`` on PyTorch, ``OnnxEngine`` on ONNX
    Runtime)."""

    @property
    def info(self) -> EngineInfo: ...

    @property
    def ready(self) -> bool: ...

    def load(self) -> None:
        """Load weights and warm up; raises :class:`~.errors.ModelLoadError` with advice."""

    def synthesize(self, request: SynthesisRequest) -> Synthesis:
        """Validate ``request`` (raising :class:`~.errors.InvalidInputError`) and return the
        stream of its audio. Validation happens here, before any audio is produced."""

    def close(self) -> None:
        """Release the model."""

    def speaker_for_seed(self, seed: int) -> str:
        """The speaker string (``spk_emb``) a voice seed stands for with these weights; the
        same on every start, machine and engine for given weights."""

    def check_speaker(self, spk_emb: object, field: str = "spk_emb") -> str:
        """Return ``spk_emb`` if it is a speaker string for this model, else raise
        :class:`~.errors.InvalidInputError` naming ``field``."""

    def check_reference_tokens(self, ref_tokens: object, field: str = "ref_tokens") -> str:
        """Return ``ref_tokens`` if it is an encoded reference clip for this model, else raise
        :class:`~.errors.InvalidInputError` naming ``field``."""

    def encode_reference(self, ref_audio: bytes) -> str:
        """Encode a reference clip (WAV, FLAC or Ogg bytes) into reusable ``ref_tokens``;
        raises :class:`~.errors.InvalidInputError` for a bad clip."""

    def add_step_listener(self, listener: StepListener) -> None:
        """Call ``listener(rows, seconds)`` after every GPT step (engines that batch steps
        across requests; others never call it). Called on the engine's thread: keep it short."""

    def remove_step_listener(self, listener: StepListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
