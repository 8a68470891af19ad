"""Every bad input gets the documented 4xx body; engine failures are 500s with a request id."""

from __future__ import annotations

import base64

import httpx
import pytest

from .sse import parse_sse

OK = {"text": "Hello.", "seed": 1}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"text": ""}, 400, "empty_text", "text"),
        ({"text": "  \n "}, 400, "empty_text", "text"),
        ({"text": "字" * 100_000}, 400, "text_too_long", "text"),
        ({**OK, "seed": "abc"}, 400, "invalid_type", "seed"),
        ({**OK, "seed": 1.5}, 400, "invalid_type", "seed"),
        ({**OK, "seed": -3}, 400, "invalid_value", "seed"),
        ({**OK, "speed": 7}, 400, "invalid_value", "speed"),
        ({**OK, "text": "hi [bogus]"}, 400, "unknown_control_token", "text"),
        ({**OK, "seed": None, "ref_audio": base64.b64encode(b"junk" * 50).decode(),
          "ref_text": "x"}, 400, "invalid_ref_audio", "ref_audio"),
        ({**OK, "seed": None, "ref_audio": "%%%not base64", "ref_text": "x"},
         400, "invalid_base64", "ref_audio"),
        ({**OK, "voice": "alloy"}, 400, "conflicting_voice", "seed"),
        ({**OK, "seed": 0, "voice": "alloy"}, 400, "conflicting_voice", "seed"),
        ({**OK, "seed": None, "voice": "seed:x"}, 400, "invalid_value", "voice"),
        ({**OK, "seed": None, "voice": "ghost"}, 404, "voice_not_found", "voice"),
        ({**OK, "colour": "blue"}, 400, "unknown_field", "colour"),
        ({"seed": 1}, 400, "missing_field", "text"),
        ({**OK, "format": "ogg"}, 400, "invalid_value", "format"),
        ({**OK, "sample_rate": 12345}, 400, "invalid_value", "sample_rate"),
        ({**OK, "format": "opus", "sample_rate": 44100}, 400, "unsupported_sample_rate",
         "sample_rate"),
        ({**OK, "pauses": {"comma": -1}}, 400, "invalid_value", "pauses.comma"),
        ({**OK, "extensions": {"max_new_tokens": "many"}}, 400, "invalid_type",
         "extensions.max_new_tokens"),
        ({**OK, "extensions": {"max_new_tokens": 100_000}}, 400, "out_of_range",
         "max_new_tokens"),
        ({**OK, "refine_prompt": "please"}, 400, "invalid_refine_prompt", "refine_prompt"),
    ],
)  # fmt: skip
def test_bad_body(http: httpx.Client, body: dict, status: int, code: str, param: str) -> None:
    r = http.post("/v1/tts", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param)
    assert err["message"] and err["type"] == "invalid_request_error"
    assert err["request_id"] == r.headers["x-request-id"]


def test_malformed_json(http: httpx.Client) -> None:
    r = http.post(
        "/v1/tts", content=b'{"text": "hi",', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_wrong_content_type(http: httpx.Client) -> None:
    r = http.post("/v1/tts", content=b"text=hi", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_huge_body(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={"text": "x" * 3_000_000})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: counted while reading
        for _ in range(30):
            yield b"x" * 100_000

    r = http.post("/v1/tts", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_unacceptable_accept(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json=OK, headers={"Accept": "video/mp4"})
    assert r.status_code == 406
    assert "audio/wav" in r.json()["error"]["message"]


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert http.get("/nope").json()["error"]["code"] == "route_not_found"
    r = http.get("/v1/tts")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.usefixtures("failing_second_segment")
def test_engine_failure_is_500_with_request_id_and_no_stack(http: httpx.Client) -> None:
    r = http.post("/v1/tts", json={"text": "One. Two. Three.", "seed": 1})
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["type"] == "server_error" and err["request_id"] == r.headers["x-request-id"]
    assert "secret" not in r.text and "Traceback" not in r.text


@pytest.mark.usefixtures("failing_second_segment")
def test_engine_failure_mid_sse_sends_an_error_event(http: httpx.Client) -> None:
    r = http.post(
        "/v1/tts", json={"text": "One. Two. Three.", "seed": 1, "stream": True},
        headers={"Accept": "text/event-stream"},
    )  # fmt: skip
    events = parse_sse(r.text)
    assert events[0][0] == "audio"
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "server_error"
    assert not any(name == "done" for name, _ in events)


def test_server_keeps_serving_after_failures(http: httpx.Client) -> None:
    assert http.post("/v1/tts", json=OK).status_code == 200
