"""Hand-written hostile input against the live app (tiny model): always the documented 4xx."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import LiveServer


def post_raw(http: httpx.Client, body: bytes, path: str = "/v1/tts") -> httpx.Response:
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code", "request_id"}
    if code is not None:
        assert err["code"] == code
    return err


def test_invalid_utf8(http: httpx.Client) -> None:
    assert_error(post_raw(http, b'{"text": "\xff\xfe bad"}'), 400, "invalid_json")


def test_lone_surrogate(http: httpx.Client) -> None:
    err = assert_error(post_raw(http, b'{"text": "a\\ud800b", "seed": 1}'), 400, "invalid_text")
    assert err["param"] == "text"


def test_one_megabyte_of_one_character(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={"text": "啊" * 1_000_000})  # 3 MB of UTF-8
    assert_error(r, 413, "body_too_large")
    r = http.post("/v1/tts", json={"text": "a" * 1_000_000})  # 1 MB: under the body limit
    assert assert_error(r, 400, "text_too_long")["param"] == "text"


def test_deeply_nested_json(http: httpx.Client) -> None:
    deep = b'{"text": "hi", "extensions": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    r = post_raw(http, deep)
    assert 400 <= r.status_code < 500


@pytest.mark.parametrize("text", ["hello\x00world", "\x07\x1b[31m", "a\x7fb"])
def test_control_characters(http: httpx.Client, text: str) -> None:
    err = assert_error(http.post("/v1/tts", json={"text": text, "seed": 1}), 400)
    assert err["code"] == "invalid_characters" and err["param"] == "text"


def test_rtl_override_is_spoken_without_the_marks(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={"text": "\u202eabc def\u202c hello.", "seed": 1})
    assert r.status_code == 200 and r.content[:4] == b"RIFF"


@pytest.mark.parametrize("text", ["😀😀😀", "🎉 🚀 ✨", "%%% ### @@@"])
def test_nothing_to_speak(http: httpx.Client, text: str) -> None:
    err = assert_error(http.post("/v1/tts", json={"text": text, "seed": 1}), 400)
    assert err["code"] == "nothing_to_speak" and err["param"] == "text"


def wav_with(data_size: int, rate: int = 16000, payload: bytes = b"\x00\x01" * 8000) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_size) + payload)  # fmt: skip


@pytest.mark.parametrize(
    "clip",
    [
        wav_with(10_000_000),  # claims far more data than it has
        wav_with(16000, rate=0),  # impossible rate
        b"RIFF\x00\x00\x00\x00WAVE",  # header only
        b"ID3" + b"\x00" * 500,  # not a WAV at all
    ],
)
def test_lying_wav_headers(http: httpx.Client, clip: bytes) -> None:
    body = {"text": "hi", "ref_audio": base64.b64encode(clip).decode(), "ref_text": "x"}
    err = assert_error(http.post("/v1/tts", json=body), 400)
    assert err["param"] == "ref_audio"


def test_compressed_clip_that_expands_to_hours(http: httpx.Client) -> None:
    """A zip-bomb-like clip: minutes of silence compress to a few kB of FLAC."""
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000 * 600, np.int16), 8000, format="FLAC")
    assert len(buf.getvalue()) < 200_000
    body = {"text": "hi", "ref_audio": base64.b64encode(buf.getvalue()).decode(), "ref_text": "x"}
    err = assert_error(http.post("/v1/tts", json=body), 400, "ref_audio_too_long")
    assert err["param"] == "ref_audio"


@pytest.mark.parametrize("voice", ["../../etc/passwd", "a/b", "x;DROP TABLE voices", "%00", ""])
def test_path_like_voice_names(http: httpx.Client, voice: str) -> None:
    r = http.post("/v1/tts", json={"text": "hi", "voice": voice})
    assert r.status_code in (400, 404), r.text
    r = http.post("/v1/voices", json={"name": voice, "seed": 1})
    assert_error(r, 400)


def test_header_injection_in_request_id(live: LiveServer) -> None:
    host, port = live.url.removeprefix("http://").split(":")
    body = json.dumps({"text": "x"}).encode()
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\n evil: folded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        reply = s.recv(65536).decode("latin-1")
    head = reply.split("\r\n\r\n")[0].lower()
    assert "evil" not in head
    assert reply.startswith("HTTP/1.1 4") or "x-request-id: abc\r\n" not in head
