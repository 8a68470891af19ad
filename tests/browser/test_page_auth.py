"""The page with API keys on: it asks for a key when the server answers 401, keeps the key in
memory only, puts only a short-lived stream token in the EventSource URL, no log line shows
the token (or the key), and an expired token is a 401 the page reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chattts_server.server import create_app
from conftest import LiveServer, make_settings, wait_idle

from .conftest import LogCapture, state, wait_js

KEY = "sk-browser-page-test-0123456789"


@pytest.fixture(scope="module")
def keyed(engine: Any) -> Iterator[LiveServer]:
    with LiveServer(create_app(make_settings(api_keys=[KEY]), engine)) as srv:
        yield srv


def record_text(record: Any) -> str:
    """Everything a log record carries: its message, arguments and extra fields."""
    return f"{record.getMessage()} {record.args!r} {vars(record)!r}"


def enter_key(page: Any) -> None:
    page.wait_for_selector("#api-key", state="visible")
    wait_js(page, "window.chattts.error !== null")
    err = state(page, ".error")
    assert (err["code"], err["status"]) == ("missing_api_key", 401)
    assert state(page, ".authRequired") is True
    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    wait_js(page, "window.chattts.voices.length > 0")
    assert state(page, ".error") is None


def test_the_page_works_with_a_typed_key_and_no_log_line_shows_the_token(
    keyed: LiveServer, open_page: Any, logs: LogCapture
) -> None:
    page, _ = open_page(keyed.url)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    enter_key(page)
    page.fill("#text", "Hello there. A second sentence.")
    page.fill("#manual-seed", "3")
    with page.expect_response("**/v1/stream-tokens") as minted:
        page.click("#speak")
    assert minted.value.status == 200
    token = minted.value.json()["token"]
    wait_js(page, "window.chattts.state === 'done'")
    assert state(page, ".samplesScheduled") == state(page, ".samplesReceived") > 0
    assert state(page, ".take.playbackStartedBeforeDone") is not None

    # the key never travels in a URL; the stream URL carries the token and nothing else secret
    assert not [u for u in urls if KEY in u]
    streams = [u for u in urls if "/v1/tts/stream?" in u]
    assert len(streams) == 1 and f"token={token}" in streams[0]
    # memory only: nothing stored in the browser
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []

    logs.wait_request("/v1/tts/stream", lambda f: f["status"] == "ok")
    wait_idle(keyed, 60)
    records = logs.snapshot()
    access = [
        r for r in records if r.name == "uvicorn.access" and "/v1/tts/stream" in r.getMessage()
    ]
    assert access, "the access log was not captured"
    assert "token=[redacted]" in access[0].getMessage()
    assert "second sentence" not in access[0].getMessage()  # text= is redacted too
    leaks = [record_text(r) for r in records if token in record_text(r) or KEY in record_text(r)]
    assert leaks == []
    print(f"\n{len(records)} log records captured; none holds the token or the key")


def test_an_expired_token_is_a_401_the_page_reports(keyed: LiveServer, open_page: Any) -> None:
    page, _ = open_page(keyed.url, width=360, height=740)  # the key field fits a phone too
    enter_key(page)
    tokens = keyed.app.state.stream_tokens

    def expire_once_minted(route: Any) -> None:
        minted = route.fetch()  # the server mints the token as usual…
        expires_at = minted.json()["expires_at"]
        tokens.clock = lambda: expires_at + 1  # …and time has passed it when the page uses it
        route.fulfill(response=minted)

    page.route("**/v1/stream-tokens", expire_once_minted)
    try:
        page.fill("#text", "Hello there.")
        page.click("#speak")
        wait_js(page, "window.chattts.error !== null")
        err = state(page, ".error")
        assert (err["code"], err["status"]) == ("token_expired", 401)
        assert "expired" in err["message"]
        shown = page.text_content("#error") or ""
        assert "token_expired" in shown and err["message"] in shown and "401" in shown
        assert state(page, ".state") == "error"
        assert state(page, ".samplesReceived") == 0
        assert page.is_visible("#api-key") and page.is_visible("#use-key")
        width, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width <= client <= 360
    finally:
        tokens.clock = time.time
    wait_idle(keyed, 60)
