"""Prometheus for the tests: Debian's ``prometheus`` package (``/usr/bin/prometheus`` and
``/usr/bin/promtool``), never a downloaded binary. A test starts its own server on loopback, on
a free port, with a temporary config and data directory, and stops it at the end; the packaged
service is not used.

``require_prometheus()`` skips with the reason when the package is missing, except under
``CI=true``, where that is a failure (``make test`` installs it as root, see
``tools/system-deps.sh``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conftest import free_port

T = TypeVar("T")


def require_prometheus() -> tuple[str, str]:
    """The ``promtool`` and ``prometheus`` binaries."""
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    if promtool is None or prometheus is None:
        reason = "Debian's prometheus is not installed (make test installs it when run as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert promtool is not None and prometheus is not None
    return promtool, prometheus


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    """``probe()``'s first truthy answer; fails after ``timeout`` seconds (a liveness bound,
    never a speed assumption)."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class PrometheusServer:
    """One private Prometheus scraping ``targets`` as job ``chattts`` every second and
    evaluating ``rule_files`` every second."""

    def __init__(self, binary: str, targets: list[str], rule_files: list[Path]) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="chattts-prom-"))
        self.log = self.root / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": "chattts", "static_configs": [{"targets": targets}]},
            ],
        }
        (self.root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.root / 'prometheus.yml'}",
                        f"--storage.tsdb.path={self.root / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--storage.tsdb.retention.time=1h",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                )
            try:
                wait_until(self._ready, "prometheus to start", timeout=60)
                return
            except AssertionError:
                self.stop()
                if attempt == 2:
                    raise AssertionError(self.log.read_text(errors="replace")[-3000:]) from None

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str, **params: str) -> Any:
        """A call of the HTTP API: its ``data`` (a failed call raises, with Prometheus's
        error)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector; a scalar is returned as one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The value of a query that returns at most one sample (``None``: none)."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
