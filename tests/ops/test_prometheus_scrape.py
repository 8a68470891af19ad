"""A real Prometheus (Debian's ``prometheus``, started here on loopback with a temporary config
and data directory) scrapes the live test server (tiny model) every second while it
synthesizes — one request held running, one queued behind it, one refused with 503 — and
evaluates deploy/prometheus/alerts.yml on those series. Every rule evaluates without error,
every alert and dashboard expression runs through the query API, the key ones have values, and
every metric name the rules and the dashboard use exists in the server's ``/metrics``.

Nothing waits for a time: every step polls for the state it needs (the held request runs until
it is cancelled), with generous deadlines."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import LiveServer, wait_idle
from prometheustool import PrometheusServer, require_prometheus, wait_until
from streamtool import Drain

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chattts-server.json"
METRIC = re.compile(r"(?<![\w:])chattts_[a-z0-9_]+(?![\w:])")
STEPS = 'chattts_gpt_batch_rows_count{job="chattts"}'
REFUSED = 'chattts_requests_total{route="/v1/tts",status="503"}'


def rule_list() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs(instance: str) -> list[tuple[str, str]]:
    """(panel title, expression) of every dashboard query, Grafana's variables filled in as
    Grafana would for job ``chattts`` and one replica."""
    fill = {
        "$__rate_interval": "1m",
        "$job": "chattts",
        "$instance": instance,
    }
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in fill.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, expr
            out.append((panel["title"], expr))
    return out


@pytest.fixture(scope="module")
def prometheus(live: LiveServer) -> Iterator[PrometheusServer]:
    _, binary = require_prometheus()
    server = PrometheusServer(binary, [live.url.removeprefix("http://")], [RULES])
    server.start()
    yield server
    server.remove()


def open_sse(url: str, body: dict[str, Any]) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, timeout=60)
    req = client.build_request(
        "POST", "/v1/tts?stream=true", json=body, headers={"Accept": "text/event-stream"}
    )
    return client, client.send(req, stream=True)


def held(url: str, body: dict[str, Any]) -> Drain:
    """An endless SSE synthesis, read past its first audio (it is synthesizing), then drained
    until ``stop`` is set and closed (the server cancels it)."""
    client, resp = open_sse(url, body)
    lines = resp.iter_lines()
    for line in lines:
        if line.startswith("event: audio"):
            break
    return Drain(client, resp, lines)


def scraped_equals_live(prometheus: PrometheusServer, live: LiveServer, metric: str) -> bool:
    """Prometheus's latest sample of ``metric`` (summed) is the server's value now."""
    name, _, labels = metric.partition("{")
    want = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    now = sum(
        value
        for sample, have, value in samples(httpx.get(f"{live.url}/metrics", timeout=30).text)
        if sample == name and want.items() <= have.items()
    )
    selector = ",".join(['job="chattts"', *(f'{k}="{v}"' for k, v in want.items())])
    return prometheus.value(f"sum({name}{{{selector}}})") == now


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample, read by prometheus_client's own parser (label
    values may hold braces: route="/v1/voices/{name}/sample")."""
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    ]


def test_prometheus_scrapes_the_live_server_and_every_rule_evaluates(
    prometheus: PrometheusServer, live: LiveServer, endless: dict[str, Any]
) -> None:
    wait_idle(live)
    wait_until(lambda: prometheus.value('up{job="chattts"}') == 1, "the target to be up")
    with httpx.Client(base_url=live.url, timeout=120) as http:
        for body in ({"text": "Hello there.", "seed": 2, "format": "pcm"},
                     {"text": "Hi.", "voice": "nobody-here"}):  # fmt: skip
            assert http.post("/v1/tts", json=body).status_code in (200, 404)
        with http.stream("POST", "/v1/tts?stream=true", json={"text": "Hi.", "seed": 3}) as r:
            assert r.status_code == 200 and b"event: done" in r.read()
        # a route label with braces in it: route="/v1/voices/{name}/sample"
        name = f"ops-{uuid.uuid4().hex[:8]}"
        assert http.post("/v1/voices", json={"name": name, "seed": 7}).status_code == 201
        assert http.get(f"/v1/voices/{name}/sample", params={"text": "Hi."}).status_code == 200
        assert http.delete(f"/v1/voices/{name}").status_code == 204

    # synthesizing: one held running, one queued behind it, a third refused (max_batch 1,
    # max_queue 1); Prometheus must see it so
    steps_before = prometheus.value(f"sum({STEPS})") or 0
    running = held(live.url, endless)
    running.start()
    queued: dict[str, int] = {}

    def second() -> None:
        with httpx.Client(base_url=live.url, timeout=300) as c:
            queued["status"] = c.post("/v1/tts", json={"text": "Next.", "seed": 2}).status_code

    waiting = threading.Thread(target=second, daemon=True)
    waiting.start()
    try:
        wait_until(lambda: live.app.state.worker.depth == 2, "the second request to queue")
        with httpx.Client(base_url=live.url, timeout=60) as c:
            # twice, a scrape apart: a counter's first sample adds nothing to its rate
            assert c.post("/v1/tts", json={"text": "Third.", "seed": 3}).status_code == 503
            wait_until(partial(scraped_equals_live, prometheus, live, REFUSED), "a 503 scraped")
            assert c.post("/v1/tts", json={"text": "Third.", "seed": 3}).status_code == 503
        wait_until(
            lambda: prometheus.value('chattts_in_flight{job="chattts"} == 1 and '
                                     'chattts_queue_depth{job="chattts"} == 1'),
            "Prometheus to scrape a synthesis running and one waiting",
        )  # fmt: skip
        wait_until(
            lambda: (prometheus.value(f"sum({STEPS})") or 0) > steps_before,
            "Prometheus to scrape the batcher's steps",
        )
    finally:
        running.stop.set()
        running.join(60)
    waiting.join(300)
    assert queued["status"] == 200
    wait_idle(live)

    # the final state scraped, then every rule evaluated on it
    for metric in ("chattts_requests_total", "chattts_audio_seconds_total"):
        wait_until(partial(scraped_equals_live, prometheus, live, metric), f"{metric} scraped")
    since = time.time()

    def evaluated_after() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["groups"]
        got = [r for g in groups for r in g["rules"]]
        stamps = [r.get("lastEvaluation", "") for r in got]
        fresh = all(s and _epoch(s) > since for s in stamps)
        return got if fresh and len(got) == len(rule_list()) else None

    evaluated = wait_until(evaluated_after, "every rule evaluated on the final series")
    for rule in evaluated:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule

    # every expression runs through the query API (errors raise), and the key ones have values
    for rule in rule_list():
        prometheus.query(rule["expr"])
    assert prometheus.value("job:chattts_replicas_ready:sum") == 1
    assert (prometheus.value("job:chattts_requests:rate5m") or 0) > 0
    assert (prometheus.value("job:chattts_requests_overloaded:ratio_rate5m") or 0) > 0
    assert (prometheus.value("job:chattts_audio_seconds:rate5m") or 0) > 0
    assert (prometheus.value("job:chattts_time_to_first_audio_seconds:p95_rate5m") or 0) > 0
    assert (prometheus.value("instance:chattts_real_time_factor:p50_rate5m") or 0) > 0
    statuses = {r["metric"]["status"] for r in prometheus.query(
        'job_route_status:chattts_requests:rate5m{route="/v1/tts"}')}  # fmt: skip
    assert {"200", "404", "503"} <= statuses
    firing = prometheus.query('ALERTS{alertname=~"ChatTTSUnavailable|ChatTTSNotReady|ChatTTSDown"}')
    assert firing == []  # ready and scraped

    instance = live.url.removeprefix("http://")
    empty = []
    for title, expr in dashboard_exprs(instance):
        if not prometheus.query(expr):
            empty.append((title, expr))
    # only the error ratio of a server that made no 5xx but 503 may be empty
    assert all("status!=" in expr for _, expr in empty), empty


def test_every_metric_the_rules_and_dashboard_use_is_served(
    prometheus: PrometheusServer, live: LiveServer
) -> None:
    """Names in the rules and the dashboard (not recorded ones) against the samples of the
    server's /metrics after traffic, and against what Prometheus scraped."""
    with httpx.Client(base_url=live.url, timeout=120) as http:
        assert http.post("/v1/tts", json={"text": "Hi.", "seed": 5, "format": "pcm"}).is_success
        text = http.get("/metrics").text
    served = {name for name, _, _ in samples(text)}
    board = json.loads(DASHBOARD.read_text())
    exprs = [r["expr"] for r in rule_list()]
    exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used and used <= served, used - served
    wait_until(lambda: scraped_equals_live(prometheus, live, "chattts_requests_total"), "scrape")
    names = set(prometheus.api("label/__name__/values"))
    assert used <= names, used - names


def _epoch(stamp: str) -> float:
    """Prometheus's RFC 3339 timestamps (nanoseconds, Z or an offset) as epoch seconds."""
    from datetime import datetime

    m = re.fullmatch(r"(.+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    assert m, stamp
    base = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(f"0.{m.group(2) or 0}")
