"""A short bounded load test on loopback: nothing lost or malformed, only documented 503s."""

from __future__ import annotations

from bench.load import run

from chattts_server.server import create_app
from conftest import LiveServer, make_settings


def test_short_load(engine) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_settings(max_queue=1), engine)
    with LiveServer(app) as srv:
        result = run(srv.url, clients=6, seconds=6, max_requests=300)
    assert result["ok"] > 0
    assert result["rejected_503"] > 0  # 6 clients on a queue of 2: some must be turned away
    assert result["malformed"] == 0 and result["lost"] == 0
    assert result["requests"] == result["ok"] + result["rejected_503"] + result["rejected_429"]
