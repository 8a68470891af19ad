"""``say`` in a separate process against the live server, and its argparse wiring."""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import wave
from pathlib import Path

from chattts_server.client.cli import add_say_parser, say
from conftest import LiveServer, wait_idle
from streamtool import assert_stream_matches

SENTENCES = "Hello world. 你好，世界。"


def run_say(
    *args: str, stdin: bytes = b"", url_env: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CHATTTS_SERVER_URL"}
    if url_env is not None:
        env["CHATTTS_SERVER_URL"] = url_env
    return subprocess.run(
        [sys.executable, "-m", "chattts_server.client.cli", "say", *args],
        input=stdin, capture_output=True, env=env, timeout=120,
    )  # fmt: skip


def frames(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == 24000
        return w.readframes(w.getnframes())


def test_say_writes_the_same_audio_streamed_or_not(live: LiveServer, tmp_path: Path) -> None:
    wait_idle(live)
    common = ["--url", live.url, "--seed", "5", "--manual-seed", "3"]
    whole, streamed = tmp_path / "whole.wav", tmp_path / "streamed.wav"
    r1 = run_say(SENTENCES, "-o", str(whole), *common)
    r2 = run_say(SENTENCES, "-o", str(streamed), "--stream", *common)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert b"sentence 2/2" in r2.stderr and b"wrote" in r2.stderr
    pcm = frames(whole.read_bytes())
    assert len(pcm) > 24000
    assert_stream_matches(frames(streamed.read_bytes()), pcm)


def test_say_reads_stdin_writes_stdout_and_takes_the_url_from_the_env(live: LiveServer) -> None:
    wait_idle(live)
    r = run_say("-", "--voice", "alloy", "--format", "mp3", stdin=b"Hi there.", url_env=live.url)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) > 100 and not r.stdout.startswith(b"RIFF")  # mp3, piped
    assert b"of mp3 to stdout" in r.stderr


def test_say_reports_the_server_error_and_exits_non_zero(live: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    r = run_say("hi", "--voice", "ghost", "-o", str(out), "--url", live.url)
    assert r.returncode == 1 and not out.exists()
    err = r.stderr.decode()
    assert "voice 'ghost' not found" in err
    assert "code=voice_not_found" in err and "param=voice" in err and "[request " in err


def test_say_fails_cleanly_when_the_server_is_down(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_say("hi", "-o", str(tmp_path / "x.wav"), "--url", f"http://127.0.0.1:{port}",
                "--retries", "1", "--stream")  # fmt: skip
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "ConnectError" in err and "retry 1/1" in err  # the retry is logged
    assert not (tmp_path / "x.wav").exists()


def test_say_refuses_streaming_a_compressed_format(tmp_path: Path) -> None:
    r = run_say("hi", "-o", str(tmp_path / "x.mp3"), "--stream")
    assert r.returncode == 2 and b"--stream writes wav" in r.stderr


def test_add_say_parser_wires_into_a_main_parser() -> None:
    parser = argparse.ArgumentParser(prog="chattts-server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_say_parser(sub)
    args = parser.parse_args(["say", "hello", "-o", "a.wav", "--format", "flac", "--stream",
                              "--seed", "4", "--timeout", "9.5", "--retries", "0"])  # fmt: skip
    assert args.func is say and args.command == "say"
    assert (args.text, args.output, args.format, args.stream) == ("hello", "a.wav", "flac", True)
    assert (args.seed, args.timeout, args.retries, args.url) == (4, 9.5, 0, None)
