"""mTLS, API keys, rate and stream limits, deadlines, CORS — on live servers (tiny model)."""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

import httpx
import pytest

from chattts_server.certs import make_dev_certs
from chattts_server.server import create_app
from chattts_server.server.main import tls_options
from conftest import LiveServer, make_settings

KEY = "sk-test-0123456789abcdef"
LONG = {
    "text": " ".join(f"Part {i}." for i in range(10)),
    "seed": 1,
    "extensions": {"min_new_tokens": 48},
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def test_cert_files_and_key_modes(certs: dict[str, Path]) -> None:
    for role in ("server_key", "client_key"):
        assert certs[role].stat().st_mode & 0o777 == 0o600
    assert certs["ca"].read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def client_ctx(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_mtls(engine, certs: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        tls_cert=certs["server"], tls_key=certs["server_key"], tls_client_ca=certs["ca"]
    )
    other = make_dev_certs(tmp_path / "other")  # a client cert from a CA the server does not know
    with LiveServer(create_app(settings, engine), **tls_options(settings)) as srv:
        url = f"{srv.url}/healthz"
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(url, verify=client_ctx(certs["ca"])).raise_for_status()
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            ctx = client_ctx(certs["ca"], other["client"], other["client_key"])
            httpx.get(url, verify=ctx).raise_for_status()
        ctx = client_ctx(certs["ca"], certs["client"], certs["client_key"])
        assert httpx.get(url, verify=ctx).status_code == 200
        r = httpx.post(f"{srv.url}/v1/tts", json={"text": "Secure.", "seed": 1}, verify=ctx,
                       timeout=60)  # fmt: skip
        assert r.status_code == 200 and r.content[:4] == b"RIFF"


def test_api_keys(engine, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keyfile = tmp_path / "keys"
    keyfile.write_text(f"# team A\n{KEY}\n\nsk-other\n")
    caplog.set_level(logging.DEBUG)
    settings = make_settings(api_keys_file=keyfile, metrics_require_key=True)
    with LiveServer(create_app(settings, engine)) as srv, httpx.Client(base_url=srv.url) as c:
        for path in ("/healthz", "/readyz"):
            assert c.get(path).status_code == 200
        r = c.post("/v1/tts", json={"text": "hi", "seed": 1})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/tts", json={"text": "hi"}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert r.json()["error"]["type"] == "authentication_error"
        assert c.get("/metrics").status_code == 401
        auth = {"Authorization": f"Bearer {KEY}"}
        assert c.post("/v1/tts", json={"text": "Hi.", "seed": 1}, headers=auth,
                      timeout=60).status_code == 200  # fmt: skip
        assert c.get("/metrics", headers=auth).status_code == 200
    logged = "\n".join(r.getMessage() + str(getattr(r, "fields", "")) for r in caplog.records)
    assert "request done" in logged
    assert KEY not in logged and "sk-other" not in logged and "nope" not in logged


def test_rate_limit(engine) -> None:  # type: ignore[no-untyped-def]
    with LiveServer(create_app(make_settings(rate_limit_per_minute=2), engine)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:  # fmt: skip
        assert c.get("/v1/voices").status_code == 200
        assert c.get("/v1/voices").status_code == 200
        r = c.get("/v1/voices")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # not limited


def test_streams_per_key(engine, endless) -> None:  # type: ignore[no-untyped-def]
    with LiveServer(create_app(make_settings(max_streams_per_key=1), engine)) as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:  # fmt: skip
        req = c.build_request("POST", "/v1/tts", json={**endless, "stream": True})
        first = c.send(req, stream=True)
        chunks = first.iter_bytes()
        next(chunks)
        r = c.post("/v1/tts", json={"text": "Second.", "seed": 1, "stream": True})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_streams"
        del chunks
        first.close()
        deadline = time.monotonic() + 60  # the slot comes back once the server saw the close
        while c.post("/v1/tts", json={"text": "Again.", "seed": 1, "stream": True}).status_code \
                == 429:  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_deadline(live: LiveServer, endless: dict) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as c:  # endless: only the deadline ends it
        r = c.post("/v1/tts", json=endless, headers={"X-Request-Timeout": "0.3"})
        assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
        r = c.post("/v1/tts?stream=true", json=endless,
                   headers={"X-Request-Timeout": "0.3", "Accept": "text/event-stream"})  # fmt: skip
        assert "event: error" in r.text and "deadline_exceeded" in r.text
        for bad in ("0", "-1", "abc", "nan", "1e9"):
            r = c.post("/v1/tts", json=LONG, headers={"X-Request-Timeout": bad})
            assert r.status_code == 400 and r.json()["error"]["param"] == "X-Request-Timeout"


def test_cors(engine, live: LiveServer) -> None:  # type: ignore[no-untyped-def]
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in httpx.options(f"{live.url}/v1/tts", headers=pre).headers
    )  # off by default
    app = create_app(make_settings(cors_origins=["https://app.example"]), engine)
    with LiveServer(app) as srv:
        r = httpx.options(f"{srv.url}/v1/tts", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(f"{srv.url}/v1/tts", headers={**pre, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
