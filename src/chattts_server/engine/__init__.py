"""The speech engine: the real ChatTTS model behind a small interface.

``ChatTTSEngine(EngineConfig(model_dir=...)).load()`` then ``engine.synthesize(request)``, which
returns a cancellable iterator of 24 kHz float32 :class:`AudioChunk`.
"""

from .base import (
    AudioChunk,
    CancelToken,
    Engine,
    EngineInfo,
    ModelInfo,
    Pauses,
    Synthesis,
    SynthesisRequest,
    SynthesisStats,
)
from .chattts_engine import SAMPLE_RATE, ChatTTSEngine, EngineConfig
from .errors import (
    EngineError,
    EngineNotReadyError,
    InvalidInputError,
    ModelLoadError,
    SynthesisCancelledError,
    SynthesisError,
)

__all__ = [
    "SAMPLE_RATE",
    "AudioChunk",
    "CancelToken",
    "ChatTTSEngine",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineInfo",
    "EngineNotReadyError",
    "InvalidInputError",
    "ModelInfo",
    "ModelLoadError",
    "Pauses",
    "Synthesis",
    "SynthesisCancelledError",
    "SynthesisError",
    "SynthesisRequest",
    "SynthesisStats",
]
