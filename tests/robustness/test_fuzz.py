"""Generated hostile input against the OpenAPI schema: never a 5xx, never a hang, always the
documented error body. Runs on a real tiny ChatTTS engine kept fast (2 GPT steps per segment)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chattts_server.engine import ChatTTSEngine, EngineConfig
from chattts_server.server import create_app
from conftest import LiveServer, make_settings

CASES = 200
AUDIO_TYPES = ("audio/", "text/event-stream")


@pytest.fixture(scope="module")
def fast(tiny_model_dir: Path) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    engine = ChatTTSEngine(
        EngineConfig(model_dir=str(tiny_model_dir), max_new_tokens=2, max_text_chars=200,
                     warmup=False)
    )  # fmt: skip
    engine.load()
    app = create_app(make_settings(max_queue=64, request_timeout_s=20.0), engine)
    with LiveServer(app) as srv:
        yield srv, httpx.get(f"{srv.url}/openapi.json").json()


def body_schema(spec: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    ref = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return {**ref, "components": spec["components"]}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=12,
)  # fmt: skip


def from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A hypothesis strategy for the JSON-schema subset FastAPI's OpenAPI uses. Values honour
    types, enums and required keys and often stray past bounds (the bounds are the test)."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(root["components"]["schemas"][name], root)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, root) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {k: from_schema(v, root) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), root), max_size=3)
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 60), 60)) | st.sampled_from(
            ["Hello there.", "你好，世界。", "alloy", "seed:7", "wav", "[uv_break]", ""]
        )
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        near = [b + d for b in (lo, hi) if b is not None for d in (-1, 0, 1)]
        return st.integers(-(2**40), 2**40) | st.sampled_from(near or [0])
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32) | st.sampled_from(
            [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
        )
    if kind == "boolean":
        return st.booleans()
    return JSON


def hostile(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Bodies that follow the schema, bodies that almost do, and arbitrary JSON."""
    valid = from_schema(schema)
    extra = st.tuples(valid, st.text(min_size=1, max_size=8), JSON).map(
        lambda t: {**t[0], t[1]: t[2]} if isinstance(t[0], dict) else t[0]
    )
    return st.one_of(valid, valid, extra, JSON)


def check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code < 300:
        ctype = r.headers.get("content-type", "")
        assert ctype.startswith(AUDIO_TYPES) or ctype.startswith("application/json"), ctype
        return
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code", "request_id"}
    assert isinstance(err["message"], str) and err["message"]


def run(srv: LiveServer, method: str, path: str, body: Any) -> None:
    with httpx.Client(base_url=srv.url, timeout=30) as c:  # a hang fails as a timeout
        r = c.request(method, path, content=json.dumps(body),
                      headers={"Content-Type": "application/json"})  # fmt: skip
    check(r)


ENDPOINTS = [
    ("post", "/v1/tts"),
    ("post", "/v1/audio/speech"),
    ("post", "/v1/voices"),
    ("post", "/v1/voices/import"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_schema_driven_hostile_bodies(fast, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    srv, spec = fast

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=hostile(body_schema(spec, path, method)))
    def case(body: Any) -> None:
        run(srv, method.upper(), path, body)

    case()


def test_voice_paths_and_patches(fast) -> None:  # type: ignore[no-untyped-def]
    srv, spec = fast
    patch = body_schema(spec, "/v1/voices/{name}", "patch")

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(name=st.text(max_size=80), body=hostile(patch), fmt=st.text(max_size=8))
    def case(name: str, body: Any, fmt: str) -> None:
        quoted = "/v1/voices/" + urllib.parse.quote(name, safe="")
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for r in (
                c.patch(str(quoted), content=json.dumps(body),
                        headers={"Content-Type": "application/json"}),
                c.get(str(quoted)),
                c.get(f"{quoted}/sample", params={"format": fmt}),
                c.delete(str(quoted)),
            ):  # fmt: skip
                check(r)

    case()
