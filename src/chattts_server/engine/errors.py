"""Errors raised by the engine layer.

Every error carries a machine-readable ``code`` and, where one input is to blame, the offending
``field``; the HTTP layer translates them in one place.

    EngineError
    ├── InvalidInputError        bad request input (code names the problem, field names the input)
    ├── ModelLoadError           the model could not be found, verified or loaded at start-up
    ├── EngineNotReadyError      synthesis asked before ``load()`` finished
    ├── SynthesisCancelledError  the caller cancelled; raised out of the synthesis iterator
    └── SynthesisError           the model failed while synthesizing
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every engine error."""

    code = "engine_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else ""
        return f"[{self.code}] {self.message}{where}"


class InvalidInputError(EngineError):
    """The request is malformed: empty text, a value out of range, an unknown control token…"""

    code = "invalid_input"


class ModelLoadError(EngineError):
    """The model could not be found, verified or loaded."""

    code = "model_load_failed"


class EngineNotReadyError(EngineError):
    """``synthesize`` was called before ``load`` completed."""

    code = "engine_not_ready"


class SynthesisCancelledError(EngineError):
    """The synthesis was cancelled by its caller."""

    code = "cancelled"


class SynthesisError(EngineError):
    """The model failed while synthesizing."""

    code = "synthesis_failed"
