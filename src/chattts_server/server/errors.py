"""HTTP errors, and the one place where every other error becomes one.

Every error response has OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` plus
``request_id``::

    APIError                    (status, type, code, param)
    ├── BadRequestError         400 invalid_request_error — validation, bad JSON, unknown fields
    ├── UnauthorizedError       401 authentication_error
    ├── NotFoundError           404 invalid_request_error — unknown voice or route
    ├── NotAcceptableError      406 invalid_request_error — no format the client accepts
    ├── ConflictError           409 invalid_request_error — a voice of that name exists
    ├── PayloadTooLargeError    413 invalid_request_error
    ├── URITooLongError         414 invalid_request_error — a GET stream URL over the limit
    ├── UnsupportedMediaError   415 invalid_request_error — body is not JSON
    ├── RateLimitedError        429 rate_limit_error (+ Retry-After) — per-key rate or streams
    ├── OverloadedError         503 overloaded_error (+ Retry-After)
    ├── NotReadyError           503 service_unavailable (model still loading)
    ├── StoreDownError          503 service_unavailable (+ Retry-After) — voice database down
    ├── DeadlineExceededError   504 timeout_error — the request's deadline passed
    └── InternalError           500 server_error (request id, no stack trace)
"""

from __future__ import annotations

from typing import Any

from ..audio import AudioError
from ..audio import NotAcceptableError as AudioNotAcceptable
from ..engine import EngineError, EngineNotReadyError, InvalidInputError
from .voicestore import StoreUnavailableError, UnstorableValueError, VoiceStoreError


class APIError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, request_id: str | None) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
                "request_id": request_id,
            }
        }


class BadRequestError(APIError):
    status, type, code = 400, "invalid_request_error", "invalid_value"


class UnauthorizedError(APIError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class NotFoundError(APIError):
    status, type, code = 404, "invalid_request_error", "not_found"


class NotAcceptableError(APIError):
    status, type, code = 406, "invalid_request_error", "not_acceptable"


class ConflictError(APIError):
    status, type, code = 409, "invalid_request_error", "conflict"


class PayloadTooLargeError(APIError):
    status, type, code = 413, "invalid_request_error", "body_too_large"


class URITooLongError(APIError):
    status, type, code = 414, "invalid_request_error", "url_too_long"


class UnsupportedMediaError(APIError):
    status, type, code = 415, "invalid_request_error", "unsupported_media_type"


class RateLimitedError(APIError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class DeadlineExceededError(APIError):
    status, type, code = 504, "timeout_error", "deadline_exceeded"


class OverloadedError(APIError):
    status, type, code = 503, "overloaded_error", "overloaded"


class NotReadyError(APIError):
    status, type, code = 503, "service_unavailable", "model_not_ready"


class StoreDownError(APIError):
    status, type, code = 503, "service_unavailable", "voice_store_unavailable"


class InternalError(APIError):
    status, type, code = 500, "server_error", "internal_error"


def translate(exc: BaseException) -> APIError:
    """Map any exception to the :class:`APIError` the client sees."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, InvalidInputError):
        return BadRequestError(exc.message, code=exc.code, param=exc.field)
    if isinstance(exc, EngineNotReadyError):
        return NotReadyError(exc.message, headers={"Retry-After": "5"})
    if isinstance(exc, AudioNotAcceptable):
        return NotAcceptableError(
            f"{exc.message}; served: {', '.join(exc.available)}", param=exc.field
        )
    if isinstance(exc, AudioError):
        return BadRequestError(exc.message, code=exc.code, param=exc.field or "format")
    if isinstance(exc, EngineError):
        return InternalError("synthesis failed", code=exc.code)
    if isinstance(exc, StoreUnavailableError):  # the message names no password (redacted)
        return StoreDownError(
            "the voice database is unreachable; retry later", headers={"Retry-After": "5"}
        )
    if isinstance(exc, UnstorableValueError):
        return BadRequestError(exc.message, code=exc.code, param=exc.field)
    if isinstance(exc, VoiceStoreError):
        return InternalError("voice store error", code=exc.code)
    return InternalError("internal error")


def validation_error(errors: list[dict[str, Any]]) -> BadRequestError:
    """The first pydantic / FastAPI validation error as a 400 naming its field."""
    err = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query")]
    param = ".".join(loc) or None
    kind = str(err.get("type", ""))
    if kind == "json_invalid":
        return BadRequestError(f"malformed JSON: {err.get('msg')}", code="invalid_json")
    if kind == "extra_forbidden":
        return BadRequestError(f"unknown field {param}", code="unknown_field", param=param)
    if kind == "missing":
        return BadRequestError(f"{param} is required", code="missing_field", param=param)
    typed = kind.endswith(("_type", "_parsing")) or kind == "int_from_float"
    code = "invalid_type" if typed else "invalid_value"
    return BadRequestError(f"{param}: {err.get('msg')}", code=code, param=param)
