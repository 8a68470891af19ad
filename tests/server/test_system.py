"""Health, readiness, metrics, voices, OpenAPI, request ids."""

from __future__ import annotations

import httpx
import pytest

from chattts_server.engine import ChatTTSEngine, EngineConfig
from chattts_server.server import create_app
from conftest import make_settings


def test_health_ready_voices(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "model": None}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["test_model"] is True
    voices = http.get("/v1/voices").json()["data"]
    assert {"alloy", "nova", "echo"} <= {v["id"] for v in voices}
    builtin = [v for v in voices if v["id"] in {"alloy", "nova", "echo"}]
    assert all(v["kind"] == "builtin" and isinstance(v["seed"], int) for v in builtin)


async def test_readyz_is_503_until_the_model_is_loaded() -> None:
    engine = ChatTTSEngine(EngineConfig(model_dir="/nonexistent"))
    app = create_app(make_settings(), engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/healthz")).status_code == 200
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "loading"
        r = await client.post("/v1/tts", json={"text": "hi"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "model_not_ready" and r.headers["retry-after"]


def test_metrics_count_requests(http: httpx.Client) -> None:
    http.post("/v1/tts", json={"text": "Metrics.", "seed": 1})
    text = http.get("/metrics").text
    assert 'chattts_requests_total{route="/v1/tts",status="200"}' in text
    for name in (
        "chattts_time_to_first_audio_seconds_bucket",
        "chattts_real_time_factor_bucket",
        "chattts_queue_depth",
        "chattts_in_flight",
        "chattts_audio_seconds_total",
    ):
        assert name in text


def test_openapi_describes_routes_and_errors(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    tts = spec["paths"]["/v1/tts"]["post"]
    for status in ("400", "404", "406", "413", "415", "500", "503"):
        ref = tts["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorBody")
    assert "/v1/audio/speech" in spec["paths"] and "/v1/voices" in spec["paths"]
    assert http.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("given", "echoed"),
    [("abc-123", True), ("bad id; X-Evil: 1", False), ("<script>", False), ("x" * 300, False)],
)
def test_request_id_is_echoed_only_when_safe(http: httpx.Client, given: str, echoed: bool) -> None:
    r = http.get("/healthz", headers={"X-Request-ID": given})
    assert (r.headers["x-request-id"] == given) is echoed
    assert "x-evil" not in r.headers
