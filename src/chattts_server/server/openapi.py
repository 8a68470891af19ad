"""The OpenAPI document: the contract, exact (checked by schemathesis with every check on).

Routes declare the error responses they can return with :func:`errors` (one error body
schema); :func:`build_openapi` then writes what only the running server knows into the
generated document — the limits that are settings (text length, token limit, request timeout,
from the engine's :class:`~..engine.EngineInfo` and :class:`~..settings.Settings`) — and the
headers every response carries (``X-Request-ID``, ``traceparent``; ``Retry-After`` on 429 and
503).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..audio import served_content_types
from .protocol import ErrorBody, TTSQuery

# one entry per served format, without parameters (audio/ogg; codecs=opus → audio/ogg)
AUDIO_TYPES = sorted({t.split(";")[0].strip() for t in served_content_types()})

_DESCRIPTIONS = {
    400: "invalid input: the body names the field (param) and a code",
    401: "missing or invalid API key (when keys are configured)",
    404: "unknown voice",
    405: "the name is one of the collection's own routes (export, import): see Allow",
    406: "no audio format the client accepts",
    409: "a voice of that name exists",
    413: "body too large",
    414: "URL too long (send the request with POST /v1/tts)",
    415: "body is not application/json",
    429: "rate limit or concurrent-stream limit (Retry-After)",
    500: "engine failure; the body carries the request id",
    503: "overloaded, model not ready or voice database unreachable (Retry-After)",
    504: "the request deadline (X-Request-Timeout) passed",
}

TIMEOUT_HEADER: dict[str, Any] = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "seconds this request may take (at most the server's request_timeout_s); "
    "past it synthesis stops and the answer is 504",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses an operation can return, each with the one error body."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document with this server's limits and headers written in (cached)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    info = app.state.engine.info
    settings = app.state.settings
    schemas = doc["components"]["schemas"]
    for model, field in (("TTSRequest", "text"), ("SpeechRequest", "input")):
        schemas[model]["properties"][field]["maxLength"] = info.max_text_chars
    for model in ("TTSRequest", "VoiceCreate"):
        _branch(schemas[model]["properties"]["ref_text"])["maxLength"] = info.max_ref_text_chars
    for field in ("max_new_tokens", "min_new_tokens"):
        _branch(schemas["Extensions"]["properties"][field])["maximum"] = info.max_new_tokens
    request_id = {
        "description": "the request id (yours when well-formed, else a new one)",
        "required": True,
        "schema": {"type": "string"},
    }
    traceparent = {
        "description": "W3C trace context: the server's span, in your trace when you sent a "
        "valid traceparent, else in a new one (the request's log line names its trace_id)",
        "required": True,
        "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"},
    }
    retry_after = {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
    _query_object(doc, "/v1/tts/stream", TTSQuery)
    schemas["TTSQuery"]["properties"]["text"]["maxLength"] = info.max_text_chars
    for unused in ("HTTPValidationError", "ValidationError"):  # our 400s replace FastAPI's 422
        schemas.pop(unused, None)
    for path in doc["paths"].values():
        for operation in path.values():
            operation["responses"].pop("422", None)
            for parameter in operation.get("parameters", []):
                if parameter["name"] == TIMEOUT_HEADER["name"]:
                    parameter["schema"]["maximum"] = settings.request_timeout_s
            for status, response in operation["responses"].items():
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = request_id
                headers["traceparent"] = traceparent
                body = response.get("content", {}).get("application/json", {}).get("schema", {})
                if status in ("429", "503") and body.get("$ref", "").endswith("/ErrorBody"):
                    headers["Retry-After"] = retry_after
    app.openapi_schema = doc
    return doc


def _query_object(doc: dict[str, Any], path: str, model: type[BaseModel]) -> None:
    """Describe a query model as one exploded object parameter (``style: form``), so the
    document can state rules across its fields (one voice source), which separate parameters
    cannot."""
    operation = doc["paths"][path]["get"]
    names = set(model.model_fields)
    operation["parameters"] = [
        {
            "name": "query",
            "in": "query",
            "required": True,
            "style": "form",
            "explode": True,
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"},
        },
        *(p for p in operation.get("parameters", []) if p["name"] not in names),
    ]
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for prop in schema["properties"].values():  # a query string has no null: absent
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
        if prop.get("default", 0) is None:
            del prop["default"]
    doc["components"]["schemas"].update(schema.pop("$defs", {}))
    doc["components"]["schemas"][model.__name__] = schema


def _branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional field's schema (``anyOf: [T, null]``)."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") != "null":
            return option
    raise ValueError(f"no non-null branch in {schema}")
