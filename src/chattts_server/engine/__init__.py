"""The speech engine: the real ChatTTS model behind a small interface.

``create_engine(EngineConfig(model_dir=...))`` (PyTorch, ``ChatTTSEngine``) or
``create_engine(EngineConfig(engine="onnx", onnx_dir=...))`` (ONNX Runtime, ``OnnxEngine``,
torch-free), then ``engine.load()`` and ``engine.synthesize(request)``, which returns a
cancellable iterator of 24 kHz float32 :class:`AudioChunk`. Importing this package imports
neither torch nor onnxruntime; loading an engine does.
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
from .chattts_engine import ChatTTSEngine
from .errors import (
    EngineError,
    EngineNotReadyError,
    InvalidInputError,
    ModelLoadError,
    SynthesisCancelledError,
    SynthesisError,
)
from .pipeline import SAMPLE_RATE, EngineConfig, PipelineEngine


def create_engine(config: EngineConfig) -> PipelineEngine:
    """The engine ``config.engine`` names: ``torch`` (ChatTTS on PyTorch) or ``onnx``."""
    if config.engine == "onnx":
        from .onnx.engine import OnnxEngine

        return OnnxEngine(config)
    return ChatTTSEngine(config)


def model_problem(config: EngineConfig) -> str | None:
    """What stops ``config``'s engine from finding its model, with advice (``None``: nothing);
    checked before serving, without loading the weights."""
    try:
        if config.engine == "onnx":
            from .onnx.files import OnnxModel

            OnnxModel.open(config.onnx_dir)
            return None
        from .chattts_engine import import_chattts
        from .loader import resolve

        resolve(config.model_dir, config.allow_download, import_chattts().Chat())
    except ModelLoadError as exc:
        return exc.message
    return None


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
    "PipelineEngine",
    "Synthesis",
    "SynthesisCancelledError",
    "SynthesisError",
    "SynthesisRequest",
    "SynthesisStats",
    "create_engine",
    "model_problem",
]
