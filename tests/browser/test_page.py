"""The page at ``/`` in a real headless Chromium against the live test server (tiny model):
it loads cleanly, lists voices, plays a take while the server is still generating it, schedules
every sample the server sent, stops (the server cancels), downloads the take as WAV, saves a
voice, shows the server's errors, fits a 360 px screen and works from the keyboard.

Nothing here depends on the machine's speed: "still generating" is held by a gate on the
engine's second segment (opened once the page reports that playback started), "mid-stream" by
an endless synthesis; waits are liveness bounds (60 s)."""

from __future__ import annotations

import io
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from conftest import LiveServer, wait_idle
from streamtool import assert_stream_matches

from .conftest import SCREENSHOTS, LogCapture, state, wait_js

THREE_SENTENCES = "Hello there. This is the second sentence. And here is the third one."


class Gate:
    def __init__(self) -> None:
        self.holding = threading.Event()  # a second segment is waiting at the gate
        self.opened = threading.Event()


@pytest.fixture
def gate(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """The second segment of a request for THREE_SENTENCES waits until the test opens the
    gate (other requests, and every other segment, pass)."""
    g = Gate()
    original = engine._segment

    def gated(p: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        if p.request.text == THREE_SENTENCES and text == p.segments[1].text:
            g.holding.set()
            if not g.opened.wait(60):
                raise RuntimeError("the test never opened the gate")
        return original(p, text, *args, **kwargs)

    monkeypatch.setattr(engine, "_segment", gated)
    yield g
    g.opened.set()


@pytest.fixture
def endless_stream(
    engine: Any, endless: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """GET /v1/tts/stream takes no ``extensions``: every request the engine prepares gets the
    ``endless`` body's token bounds instead, so it runs until it is cancelled."""
    ext = endless["extensions"]
    original = engine._prepare

    def prepare(request: Any) -> Any:
        return original(
            replace(
                request,
                min_new_tokens=ext["min_new_tokens"],
                max_new_tokens=ext["max_new_tokens"],
            )
        )

    monkeypatch.setattr(engine, "_prepare", prepare)
    return endless


@pytest.fixture
def voice_name(http: httpx.Client) -> Iterator[Any]:
    """``voice_name(prefix)``: a fresh voice name, deleted from the shared server afterwards."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        http.delete(f"/v1/voices/{name}")


def wait_voices(page: Any) -> list[str]:
    wait_js(page, "window.chattts.voices.length > 0")
    voices: list[str] = state(page, ".voices")
    return voices


def option_values(page: Any) -> list[str]:
    values: list[str] = page.eval_on_selector_all("#voice option", "os => os.map(o => o.value)")
    return values


def wait_error(page: Any) -> dict[str, Any]:
    wait_js(page, "window.chattts.error !== null")
    err: dict[str, Any] = state(page, ".error")
    return err


def test_page_loads_cleanly_and_lists_builtin_and_saved_voices(
    live: LiveServer, open_page: Any, http: httpx.Client, voice_name: Any
) -> None:
    saved = voice_name("page")
    assert http.post("/v1/voices", json={"name": saved, "seed": 77}).status_code == 201
    listed = http.get("/v1/voices").json()["data"]
    builtin = [v["id"] for v in listed if v["kind"] == "builtin"]
    assert "alloy" in builtin

    page, console = open_page(live.url)
    voices = wait_voices(page)
    assert set(voices) == {v["id"] for v in listed}
    options = option_values(page)  # what a person sees in the picker, not only the state
    assert set(builtin) <= set(options)
    assert saved in options
    groups = page.eval_on_selector_all("#voice optgroup", "gs => gs.map(g => g.label)")
    assert groups == ["Built-in", "Saved"]
    assert state(page, ".state") == "idle"
    assert state(page, ".error") is None
    assert page.is_hidden("#auth")  # no key asked for: the server has none
    assert console.errors == []


def test_speak_plays_before_done_and_schedules_every_sample_sent(
    live: LiveServer, open_page: Any, gate: Gate, http: httpx.Client
) -> None:
    page, console = open_page(live.url)
    wait_voices(page)
    page.fill("#text", THREE_SENTENCES)
    page.select_option("#voice", "alloy")
    page.fill("#manual-seed", "7")
    page.click("#speak")

    # the first sentence plays while the second is held on the server
    wait_js(page, "window.chattts.playbackStarted")
    take = state(page, ".take")
    assert take["done"] is None and take["state"] == "streaming"
    assert take["progress"]["sentences_done"] < take["progress"]["sentences_total"] == 3
    assert state(page, ".contextState") == "running"
    before = state(page, ".contextTime")
    wait_js(page, f"window.chattts.contextTime > {before}")  # the audio clock advances
    assert state(page, ".take.done") is None
    # the server really is still generating: sentence 2 reaches the gate and waits there
    assert gate.holding.wait(120)
    assert state(page, ".take.done") is None
    gate.opened.set()

    wait_js(page, "window.chattts.state === 'done'")
    take = state(page, ".take")
    assert take["playbackStartedBeforeDone"] is True
    assert take["contextStateAtDone"] == "running"
    assert take["contextTimeAtDone"] > take["firstStartContextTime"]
    assert take["progress"]["sentences_done"] == take["progress"]["sentences_total"] == 3
    assert take["sampleRate"] == state(page, ".contextSampleRate") == 24000
    assert take["samplesScheduled"] == take["samplesReceived"] > 0

    # the server's own count: the same request as one whole PCM answer
    whole = http.post(
        "/v1/tts",
        json={"text": THREE_SENTENCES, "voice": "alloy", "manual_seed": 7, "format": "pcm"},
    )
    assert whole.status_code == 200
    server_samples = len(whole.content) // 2
    assert take["samplesReceived"] == server_samples
    assert take["samplesScheduled"] == server_samples
    assert abs(take["done"]["audio_duration_ms"] - server_samples / 24) <= 1
    assert take["done"]["finish_reason"]

    # Download: the take as WAV, assembled in the page from what it received
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == f"chattts-{take['done']['request_id']}.wav"
    with wave.open(io.BytesIO(download.path().read_bytes())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() == server_samples
        assert_stream_matches(w.readframes(w.getnframes()), whole.content)

    ttfa = page.text_content("#ttfa") or ""
    assert "ms" in ttfa and "server:" in ttfa
    assert page.text_content("#progress-text") == "3 of 3"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-after-speaking.png"), full_page=True)
    assert console.errors == []


def test_stop_mid_stream_cancels_the_synthesis(
    live: LiveServer, open_page: Any, endless_stream: dict[str, Any], logs: LogCapture
) -> None:
    page, console = open_page(live.url)
    wait_voices(page)
    page.fill("#text", endless_stream["text"])
    page.click("#speak")
    wait_js(page, "window.chattts.samplesReceived > 0")  # audio is flowing: mid-stream
    assert state(page, ".state") == "streaming"
    clicked = time.time()
    page.click("#stop")
    line = logs.wait_request("/v1/tts/stream", lambda f: f["status"] != "ok")
    print(
        f"\nStop click → request log line 'cancelled': {(line['created'] - clicked) * 1000:.0f} ms"
    )
    assert line["status"] == "cancelled"
    assert line["http_status"] == 499
    assert state(page, ".state") == "stopped"
    assert state(page, ".playing") is False
    assert state(page, ".samplesScheduled") == state(page, ".samplesReceived")
    assert page.get_attribute("#stop", "aria-disabled") == "true"
    assert page.get_attribute("#download", "aria-disabled") == "true"
    wait_idle(live, 60)
    assert console.errors == []


@pytest.mark.usefixtures("failing_second_segment")
def test_a_failure_mid_stream_shows_the_servers_error_event(
    live: LiveServer, open_page: Any
) -> None:
    page, _ = open_page(live.url)
    wait_voices(page)
    page.fill("#text", "Hello there. This sentence fails on the server.")
    page.fill("#manual-seed", "7")
    page.click("#speak")
    err = wait_error(page)  # from the stream's own `event: error`, not a failed connection
    assert state(page, ".state") == "error"
    assert state(page, ".take.audioEvents") > 0  # it failed after audio had started
    assert err["status"] is None  # the status line was 200: only the event says why
    assert (err["type"], err["code"]) == ("server_error", "synthesis_failed")
    assert err["request_id"]
    shown = page.text_content("#error") or ""
    assert err["message"] in shown and "synthesis_failed" in shown
    assert "/secret/path" not in shown
    assert state(page, ".playing") is False  # what was scheduled is stopped, not left playing
    wait_idle(live, 60)


def test_bad_input_shows_the_servers_message_and_code(
    live: LiveServer, open_page: Any, http: httpx.Client
) -> None:
    gone = f"gone-{uuid.uuid4().hex[:8]}"
    assert http.post("/v1/voices", json={"name": gone, "seed": 5}).status_code == 201
    page, _ = open_page(live.url)
    wait_voices(page)
    assert gone in option_values(page)
    assert http.delete(f"/v1/voices/{gone}").status_code in (200, 204)

    limit = live.app.state.settings.max_text_chars
    cases = [  # the form's fields
        {"voice": gone, "text": "Hello."},
        {"text": "a" * (limit + 1)},
        {"text": "Hello.", "temperature": "5"},
        {"text": "你" * (limit - 1)},  # under the text limit, but a URL over its limit
    ]
    seen = []
    for fields in cases:
        # the same query the page sends (its speed and temperature fields hold values)
        query = {"speed": "1", "temperature": "0.3", **fields}
        page.select_option("#voice", fields.get("voice", ""))
        page.fill("#text", fields["text"])
        page.fill("#temperature", query["temperature"])
        page.click("#speak")
        err = wait_error(page)
        expected = http.get("/v1/tts/stream", params=query)
        assert expected.status_code >= 400
        body = expected.json()["error"]
        assert state(page, ".state") == "error"
        assert (err["message"], err["code"], err["param"], err["status"]) == (
            body["message"], body["code"], body["param"], expected.status_code,
        )  # fmt: skip
        shown = page.text_content("#error") or ""
        assert body["message"] in shown and body["code"] in shown
        if body["param"]:
            assert body["param"] in shown
        assert page.is_visible("#error")
        seen.append((expected.status_code, body["code"]))
    assert seen[0] == (404, "voice_not_found")
    assert seen[1] == (400, "text_too_long")
    assert seen[2][0] == 400
    assert seen[3] == (414, "url_too_long")


def test_save_voice_from_the_seed(
    live: LiveServer, open_page: Any, http: httpx.Client, voice_name: Any
) -> None:
    page, console = open_page(live.url)
    wait_voices(page)
    name = voice_name("mine")
    page.fill("#seed", "4242")
    page.fill("#voice-name", name)
    page.click("#save-voice")
    wait_js(page, f"window.chattts.voices.includes({name!r})")
    assert page.input_value("#voice") == name
    assert name in (page.text_content("#notice") or "")
    stored = {v["id"]: v for v in http.get("/v1/voices").json()["data"]}[name]
    assert (stored["kind"], stored["seed"]) == ("seed", 4242)
    assert console.errors == []

    page.fill("#seed", "4242")  # the same name again: the server's 409
    page.click("#save-voice")
    err = wait_error(page)
    assert (err["code"], err["status"]) == ("voice_exists", 409)
    page.fill("#voice-name", "not a name!")
    page.click("#save-voice")
    wait_js(page, "window.chattts.error && window.chattts.error.code !== 'voice_exists'")
    err = state(page, ".error")
    answer = http.post("/v1/voices", json={"name": "not a name!", "seed": 4242})
    body = answer.json()["error"]
    assert (err["message"], err["code"], err["param"], err["status"]) == (
        body["message"], body["code"], "name", answer.status_code,
    )  # fmt: skip
    assert answer.status_code == 400
    shown = page.text_content("#error") or ""
    assert body["code"] in shown and body["message"] in shown


VISIBLE_CONTROLS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(e => e.offsetParent !== null)
  .map(e => { const r = e.getBoundingClientRect(); return {id: e.id, left: r.left,
               right: r.right, label: e.labels && e.labels.length ? e.labels[0].textContent
               : e.textContent}; })"""


def test_readable_on_a_360px_screen(live: LiveServer, open_page: Any) -> None:
    page, _ = open_page(live.url, width=360, height=740)
    wait_voices(page)

    def fits() -> None:
        width, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width <= client <= 360, "the page scrolls sideways"
        for control in page.evaluate(VISIBLE_CONTROLS):
            assert control["left"] >= 0 and control["right"] <= client, control
            assert control["label"].strip(), f"{control['id']} has no label"

    fits()
    page.fill("#text", "a" * (live.app.state.settings.max_text_chars + 1))
    page.click("#speak")
    wait_error(page)  # a long message from the server, wrapped
    fits()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-360px-error.png"), full_page=True)


def test_keyboard_reaches_every_control_and_speaks(live: LiveServer, open_page: Any) -> None:
    page, _ = open_page(live.url)
    wait_voices(page)
    controls = [c["id"] for c in page.evaluate(VISIBLE_CONTROLS)]
    assert {"text", "voice", "seed", "speed", "temperature", "manual-seed", "speak", "stop",
            "download", "voice-name", "save-voice"} <= set(controls)  # fmt: skip
    reached: list[str] = []
    for _ in range(len(controls) + 2):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert reached[: len(controls)] == controls  # every control, in reading order

    page.fill("#text", "Hi there.")
    while page.evaluate("document.activeElement.id") != "speak":
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    wait_js(page, "window.chattts.takes === 1 && window.chattts.state === 'done'")
    assert page.evaluate("document.activeElement.id") == "speak"
    page.keyboard.press("Space")
    wait_js(page, "window.chattts.takes === 2 && window.chattts.state === 'done'")
    assert state(page, ".samplesScheduled") == state(page, ".samplesReceived") > 0
