"""The Go client (``clients/go``) against real servers on the tiny model: its integration tests
(``TestIntegration_*`` on the plain session server, ``TestIntegrationSecure_*`` on a server that
wants an API key and mTLS), its PCM compared with the Python SDK's for the same
``manual_seed``, and the ``chattts`` CLI. The Go test binary and the CLI are built once, offline,
with the toolchain from the venv (``tests/gotool.py``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chattts_server.client import AudioChunk, Client
from conftest import LiveServer, wait_idle
from gotool import require_go
from securetool import KEY
from streamtool import assert_stream_matches
from tracetool import capture, line_of

pytestmark = pytest.mark.slow

MODULE = Path(__file__).resolve().parents[2] / "clients" / "go"
TEXT = "Hello world. 你好，世界。"  # the Go tests' itText
PLAIN = [
    "TestIntegration_HealthAndReadiness",
    "TestIntegration_FormatsAndSampleRates",
    "TestIntegration_OpenAISpeech",
    "TestIntegration_VoiceLibrary",
    "TestIntegration_ErrorsAreTypedAndNotRetried",
    "TestIntegration_ValidateAgreesWithTheServer",
    "TestIntegration_Chapter1Flow",
]
HELD = "TestIntegration_CancelStopsTheServer"  # needs a synthesis held running
TRACED = "TestIntegration_TraceContext"  # its log records compared with the server's lines
HOLD_TOKENS = 10**6  # GPT steps (6 hours of audio): random weights never end on their own
COMPARED = "TestIntegration_StreamEqualsSynthesize"  # run by the comparison with the Python SDK
SECURE = [
    "TestIntegrationSecure_MTLSAndAPIKeyWork",
    "TestIntegrationSecure_WrongOrMissingKeyIs401AndNeverShown",
    "TestIntegrationSecure_NoClientCertificateOrUnknownCAFailsAsTransport",
]


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Go integration-test binary and the CLI, built once (with the race detector when
    CHATTTS_GO_RACE=1: it needs cgo and a C compiler)."""
    go, env = require_go()
    race = ["-race"] if os.environ.get("CHATTTS_GO_RACE") == "1" else []
    if race:
        env = {**env, "CGO_ENABLED": "1"}
    out = tmp_path_factory.mktemp("go-bin")
    built = {"it": out / "it.test", "cli": out / "chattts"}
    for cmd in (["test", *race, "-c", "-o", str(built["it"]), "."],
                ["build", *race, "-o", str(built["cli"]), "./cmd/chattts"]):  # fmt: skip
        proc = subprocess.run(
            [go, *cmd], cwd=MODULE, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"go {' '.join(cmd)}:\n{proc.stdout}{proc.stderr}"
    return built


def run_go_test(bins: dict[str, Path], name: str, **env: str) -> str:
    """Run one Go test against a server; it must pass, not skip. Returns its output."""
    proc = subprocess.run(
        [str(bins["it"]), "-test.run", f"^{name}$", "-test.v", "-test.count=1"],
        cwd=MODULE,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"--- PASS: {name} " in out, out
    return out


def pcm_of(data: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(w.getnframes())


def secure_env(secure: LiveServer, certs: dict[str, Path]) -> dict[str, str]:
    return {
        "CHATTTS_IT_URL": secure.url,
        "CHATTTS_IT_API_KEY": KEY,
        "CHATTTS_IT_CA": str(certs["ca"]),
        "CHATTTS_IT_CERT": str(certs["client"]),
        "CHATTTS_IT_KEY": str(certs["client_key"]),
    }


def test_every_go_integration_test_is_run_here(bins: dict[str, Path]) -> None:
    proc = subprocess.run(
        [str(bins["it"]), "-test.list", "^TestIntegration"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sorted(proc.stdout.split()) == sorted([*PLAIN, COMPARED, HELD, TRACED, *SECURE])


def test_without_a_server_the_integration_tests_skip(bins: dict[str, Path]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATTTS_IT_")}
    proc = subprocess.run(
        [str(bins["it"]), "-test.run", "^TestIntegration", "-test.v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.count("--- SKIP: TestIntegration") == len(PLAIN) + len(SECURE) + 3


@pytest.mark.parametrize("name", PLAIN)
def test_go_integration(bins: dict[str, Path], live: LiveServer, name: str) -> None:
    wait_idle(live)
    run_go_test(bins, name, CHATTTS_IT_URL=live.url)


def test_go_cancel_stops_the_servers_synthesis(
    bins: dict[str, Path], live: LiveServer, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The synthesis is held running (a token limit it cannot reach) until the Go client
    cancels: the test never depends on how fast the machine synthesizes."""
    wait_idle(live)
    monkeypatch.setattr(engine, "config", replace(engine.config, max_new_tokens=HOLD_TOKENS))
    run_go_test(bins, HELD, CHATTTS_IT_URL=live.url, CHATTTS_IT_HOLD_TOKENS=str(HOLD_TOKENS))
    wait_idle(live)


def test_go_pcm_equals_the_python_sdks(
    bins: dict[str, Path], live: LiveServer, tmp_path: Path
) -> None:
    """Go: Stream PCM == StreamAudio PCM, Synthesize PCM; each equal to what the Python SDK gets
    for the same request and manual_seed (streamed and whole within the streaming bound)."""
    wait_idle(live)
    run_go_test(bins, COMPARED, CHATTTS_IT_URL=live.url, CHATTTS_IT_OUT=str(tmp_path))
    req = json.loads((tmp_path / "request.json").read_text())
    assert req == {"text": TEXT, "seed": 5, "manual_seed": 3}
    with Client(live.url, timeout=120) as client:
        events = list(client.stream(TEXT, seed=5, manual_seed=3))
        py_stream = b"".join(e.pcm for e in events if isinstance(e, AudioChunk))
        py_whole = client.synthesize(TEXT, format="pcm", seed=5, manual_seed=3).data
    go = {n: (tmp_path / f"{n}.pcm").read_bytes() for n in ("synthesize", "stream", "stream_audio")}
    assert len(py_stream) > 24000
    assert go["stream"] == go["stream_audio"] == py_stream  # the same streamed samples
    assert go["synthesize"] == py_whole
    assert_stream_matches(py_stream, py_whole)


def test_the_server_logs_the_trace_the_go_client_logged(
    bins: dict[str, Path], live: LiveServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each Go call's slog record (a whole file in a new trace, a stream in the caller's) and
    the server's request log line of the same request id name the same trace id."""
    wait_idle(live)
    capture(caplog)
    run_go_test(bins, TRACED, CHATTTS_IT_URL=live.url, CHATTTS_IT_OUT=str(tmp_path))
    records = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert [r["op"] for r in records] == ["synthesize", "stream"]
    assert records[1]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    for rec in records:
        line = line_of(caplog, rec["request_id"])
        assert line["trace_id"] == rec["trace_id"]
        assert line["parent_span_id"] == rec["span_id"] != line["span_id"]


@pytest.mark.parametrize("name", SECURE)
def test_go_integration_secure(
    bins: dict[str, Path], secure: LiveServer, certs: dict[str, Path], name: str
) -> None:
    wait_idle(secure)
    run_go_test(bins, name, **secure_env(secure, certs))


# --- the CLI --------------------------------------------------------------------------------


def cli(
    bins: dict[str, Path], *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATTTS_SERVER_")}
    return subprocess.run(
        [str(bins["cli"]), *args],
        input=stdin,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_cli_say_writes_what_the_python_sdk_gets(
    bins: dict[str, Path], live: LiveServer, tmp_path: Path, stream: bool
) -> None:
    wait_idle(live)
    out = tmp_path / "say.wav"
    args = ["say", "-", "-o", str(out), "--seed", "5", "--manual-seed", "3"]
    proc = cli(bins, *args, *(["--stream"] if stream else []), stdin=TEXT,
               CHATTTS_SERVER_URL=live.url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rate, frames = pcm_of(out.read_bytes())
    with Client(live.url, timeout=120) as client:
        expected = client.synthesize(TEXT, format="pcm", seed=5, manual_seed=3).data
    assert rate == 24000
    if stream:
        assert_stream_matches(frames, expected)
    else:
        assert frames == expected
    if stream:
        assert "2/2 sentences" in proc.stderr and "done:" in proc.stderr


def test_cli_failure_names_the_code_and_request_id(
    bins: dict[str, Path], live: LiveServer, tmp_path: Path
) -> None:
    out = tmp_path / "never.wav"
    proc = cli(bins, "say", "Hi.", "-o", str(out), "--url", live.url, "--voice", "nobody-here")
    assert proc.returncode == 1
    assert "status=404" in proc.stderr and "code=voice_not_found" in proc.stderr
    request_id = proc.stderr.split("request_id=")[1].split(")")[0]
    assert len(request_id) == 32 and not out.exists()
    usage = cli(bins, "say", "Hi.", "-o", str(out), "--url", live.url, "--lang", "ja-JP")
    assert usage.returncode == 2 and "unsupported_language" in usage.stderr


def test_cli_voices_create_list_delete(bins: dict[str, Path], live: LiveServer) -> None:
    name = f"go-cli-{uuid.uuid4().hex[:8]}"
    env = {"CHATTTS_SERVER_URL": live.url}
    created = cli(bins, "voices", "create", name, "--seed", "11", "--description", "cli", **env)
    assert created.returncode == 0 and created.stdout == f"created {name} (seed)\n"
    listed = cli(bins, "voices", "list", "--json", **env)
    voices = {v["id"]: v for v in json.loads(listed.stdout)}
    assert voices[name]["seed"] == 11 and voices[name]["description"] == "cli"
    assert voices["alloy"]["kind"] == "builtin"
    assert cli(bins, "voices", "delete", name, **env).stdout == f"deleted {name}\n"
    again = cli(bins, "voices", "delete", name, **env)
    assert again.returncode == 1 and "code=voice_not_found" in again.stderr


def test_cli_over_mtls_with_the_key_from_the_env(
    bins: dict[str, Path], secure: LiveServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    files = ["--ca", str(certs["ca"]), "--cert", str(certs["client"]),
             "--key", str(certs["client_key"])]  # fmt: skip
    out = tmp_path / "secure.wav"
    args = ["say", "Secure.", "-o", str(out), "--url", secure.url, "--seed", "2", *files]
    ok = cli(bins, *args, CHATTTS_SERVER_API_KEY=KEY)
    assert ok.returncode == 0, ok.stderr
    assert pcm_of(out.read_bytes())[1]
    missing = cli(bins, *args)
    assert missing.returncode == 1 and "code=missing_api_key" in missing.stderr
    wrong = cli(bins, *args, "--api-key", "sk-wrong-0000")
    assert "code=invalid_api_key" in wrong.stderr and "sk-wrong-0000" not in wrong.stderr
    no_cert = cli(bins, "voices", "list", "--url", secure.url, "--ca", str(certs["ca"]),
                  "--retries", "0", CHATTTS_SERVER_API_KEY=KEY)  # fmt: skip
    assert no_cert.returncode == 1 and no_cert.stderr.startswith("error: GET /v1/voices")
