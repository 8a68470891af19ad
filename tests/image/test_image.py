"""The image as it would be run: warm before ready, non-root, read-only, a synthesis over HTTP,
SIGTERM during a request; refusing root; no model and no network; the health check; what the
final stage leaves out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.server.shutdown import WAIT_S, finish_after_sigterm, log_records, silence_bytes

from chattts_server.audio.decode import decode_audio

from .conftest import podman

APP_UID = 10001


def logs(name: str) -> str:
    proc = podman("logs", name, check=False)
    return proc.stdout + proc.stderr


def host_url(name: str) -> str:
    # "0.0.0.0:PORT" or "127.0.0.1:PORT"
    address = podman("port", name, "9700/tcp").stdout.strip().splitlines()[0]
    return f"http://127.0.0.1:{address.rsplit(':', 1)[1]}"


def inspect(name: str, field: str) -> str:
    return podman("inspect", "--format", "{{" + field + "}}", name).stdout.strip()


def wait_ready(name: str, url: str) -> tuple[httpx.Response, str]:
    """Poll /readyz until 200; returns it and the container's log at that moment."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert inspect(name, ".State.Running") == "true", logs(name)
        try:
            ready = httpx.get(f"{url}/readyz", timeout=5)
        except httpx.TransportError:
            ready = None
        if ready is not None and ready.status_code == 200:
            return ready, logs(name)
        if ready is not None:
            assert ready.status_code == 503, ready.text
        time.sleep(0.2)
    raise AssertionError(f"not ready after {WAIT_S} s:\n{logs(name)}")


@pytest.fixture(scope="module")
def server(image: str, model_dir: Path, volume: str) -> Iterator[tuple[str, str]]:
    """The image served as it would be in production, and more locked down: the model mounted
    read-only, /data a named volume, the root filesystem read-only (/tmp a tmpfs). The bounds
    that could cut the SIGTERM test's request are far away: only its own end may end it."""
    name = f"chattts-test-server-{volume[-10:]}"
    podman(
        "run", "-d", "--name", name, "-p", "127.0.0.1::9700",
        "-v", f"{model_dir}:/models:ro", "-v", f"{volume}:/data",
        "--read-only", "--tmpfs", "/tmp",
        "-e", "CHATTTS_SERVER_GRACEFUL_SHUTDOWN_S=600", "-e", "CHATTTS_SERVER_SEND_TIMEOUT_S=600",
        image,
    )  # fmt: skip
    try:
        yield name, host_url(name)
    finally:
        podman("rm", "-f", "-v", "-t", "0", name, check=False)


def test_ready_only_after_the_warm_up(server: tuple[str, str]) -> None:
    name, url = server
    _, log = wait_ready(name, url)  # the first 200 (this test runs first)
    messages = [r.get("msg", "") for r in log_records(log)]
    assert any(m.startswith("warm-up done") for m in messages), log


def test_ready_serves_the_model_and_the_health_check_agrees(server: tuple[str, str]) -> None:
    name, url = server
    ready, _ = wait_ready(name, url)
    model = ready.json()["model"]
    assert model["test_model"] is True and model["device"] == "cpu"
    check = podman("healthcheck", "run", name, check=False)  # the image's own HEALTHCHECK
    assert check.returncode == 0, check.stdout + check.stderr


def test_runs_as_the_unprivileged_user(server: tuple[str, str]) -> None:
    name, _ = server
    assert inspect(name, ".Config.User") == str(APP_UID)
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [str(APP_UID)] * 4  # real, effective, saved, filesystem
    cmdline = podman("exec", name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert "chattts-server" in cmdline[1] and "serve" in cmdline  # the server is PID 1


def test_a_synthesis_over_http_decodes(server: tuple[str, str]) -> None:
    name, url = server
    wait_ready(name, url)
    r = httpx.post(
        f"{url}/v1/tts", json={"text": "Hello from the container.", "seed": 3}, timeout=WAIT_S
    )
    assert r.status_code == 200, r.text
    samples, rate = decode_audio(r.content)
    assert rate == 24000 and samples.size > 0 and np.isfinite(samples).all()
    mp3 = httpx.post(
        f"{url}/v1/audio/speech",
        json={"model": "tts-1", "input": "Hello.", "voice": "alloy"},
        timeout=WAIT_S,
    )
    assert mp3.status_code == 200 and decode_audio(mp3.content, "mp3")[0].size > 0
    # a saved voice lands in the /data volume (the root filesystem is read-only)
    created = httpx.post(f"{url}/v1/voices", json={"name": "kept", "seed": 5}, timeout=60)
    assert created.status_code == 201, created.text
    ls = podman("exec", name, "ls", "-ln", "/data").stdout
    assert "voices.db" in ls and f" {APP_UID} " in ls


def test_sigterm_during_a_request_lets_it_finish_and_exits_0(server: tuple[str, str]) -> None:
    name, url = server
    wait_ready(name, url)
    first, total = finish_after_sigterm(url, lambda: podman("kill", "--signal", "TERM", name))
    status = podman("wait", name, timeout=WAIT_S).stdout.strip()
    log = logs(name)
    assert status == "0", log[-5000:]
    assert first.startswith(b"RIFF") and total > silence_bytes()
    records = log_records(log)
    assert any("Waiting for connections to close" in r.get("msg", "") for r in records)
    long_one = [r for r in records if r.get("route") == "/v1/tts" and r.get("chars", 0) > 100]
    assert [(r["status"], r["http_status"]) for r in long_one] == [("ok", 200)]


def test_refuses_root_unless_told(image: str) -> None:
    refused = podman("run", "--rm", "--network=none", "--user", "0", image, check=False)
    assert refused.returncode == 77
    assert "refusing to run as root" in refused.stderr and "CHATTTS_ALLOW_ROOT=1" in refused.stderr
    allowed = podman(
        "run", "--rm", "--network=none", "--user", "0", "-e", "CHATTTS_ALLOW_ROOT=1",
        image, "id", "-u",
    )  # fmt: skip
    assert allowed.stdout.strip() == "0"


def test_no_model_and_no_network_exits_with_the_advice(image: str) -> None:
    proc = podman("run", "--rm", "--network=none", image, check=False, timeout=WAIT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "No usable ChatTTS model" in proc.stderr and "Ways forward" in proc.stderr, out
    assert "-v /path/to/ChatTTS:/models:ro" in proc.stderr  # the entrypoint's hint
    assert "Traceback" not in out


def test_the_health_check_reports_a_server_that_is_not_ready(image: str, name: str) -> None:
    # a container whose server answers /readyz with 503 (as while loading, or after a failed
    # load), then one with no server at all
    answer_503 = (
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(503); self.end_headers(); self.wfile.write(b'loading')\n"
        "h.HTTPServer(('127.0.0.1', 9700), H).serve_forever()\n"
    )
    podman("run", "-d", "--name", name, "--network=none", image, "python", "-c", answer_503)
    deadline = time.monotonic() + WAIT_S
    while True:  # until the stand-in listens
        check = podman("healthcheck", "run", name, check=False)
        probe = podman("exec", name, "chattts-healthcheck", check=False)
        if "not ready: 503" in probe.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "not ready: 503" in probe.stdout and probe.returncode == 1
    assert check.returncode != 0 and "unhealthy" in check.stdout + check.stderr
    podman("rm", "-f", "-v", "-t", "0", name)

    podman("run", "-d", "--name", name, "--network=none", image, "sleep", "600")
    check = podman("healthcheck", "run", name, check=False)
    assert check.returncode != 0 and "unhealthy" in check.stdout + check.stderr
    probe = podman("exec", name, "chattts-healthcheck", check=False)
    assert probe.returncode == 1 and "not answering" in probe.stdout


def test_the_image_declares_how_it_runs(image: str) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == str(APP_UID)
    assert "9700/tcp" in config["ExposedPorts"]
    assert set(config["Volumes"]) == {"/models", "/data"}
    assert config["StopSignal"] == "SIGTERM"
    assert config["Entrypoint"] == ["chattts-entrypoint"] and config["Cmd"] == ["serve"]
    assert inspected["Healthcheck"]["Test"] == ["CMD", "chattts-healthcheck"]  # docker format


def test_the_final_stage_has_no_compilers_installers_or_caches(image: str) -> None:
    # (the base's own files aside: Debian's venv support keeps the ensurepip wheels, and
    # python:3.11-slim its pip, outside /opt/venv)
    script = (
        "for c in gcc cc c++ g++ clang make ld as; do"
        '  command -v "$c" >/dev/null && echo "found compiler $c"; done;'
        " ls /opt/venv/bin | grep -E '^pip' | sed 's/^/found installer /';"
        " python -c 'import pip' 2>/dev/null && echo 'found the pip module';"
        " find /root /home /tmp /opt /var/cache /var/lib/apt/lists -xdev"
        " \\( -name '*.whl' -o -name '*.deb' -o -name '*.tar.gz' -o -path '*/.cache/*'"
        " -o -path '/var/lib/apt/lists/*' \\) 2>/dev/null | sed 's/^/found /';"
        " for d in /wheels /src /tmp/wheels /tmp/build; do"
        '  [ -e "$d" ] && echo "found $d"; done;'
        " true"
    )
    proc = podman(
        "run", "--rm", "--network=none", "--user", "0", "-e", "CHATTTS_ALLOW_ROOT=1",
        image, "sh", "-c", script,
    )  # fmt: skip
    found = [line for line in proc.stdout.splitlines() if line.startswith("found")]
    assert found == [], found
    which = podman("run", "--rm", "--network=none", image, "sh", "-c", "command -v python")
    assert which.stdout.strip() == "/opt/venv/bin/python"
