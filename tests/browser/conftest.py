"""Browser tests: the page at ``/`` in Debian's headless Chromium, driven by Playwright (sync
API), against live test servers on the tiny model. Chromium starts once per module; each test
gets a fresh browser context (its own page, cookies and audio)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from browsertool import ARGS, require_chromium

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots"
LONG_MS = 60_000  # liveness bound for anything the page waits on: never a speed assertion


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Per module: Playwright's sync API keeps an event loop running in the main thread while
    it is open, which would break every asyncio test that runs after the browser tests."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=require_chromium(), args=ARGS)
    yield b
    b.close()


class Console:
    """What the page said on its console, and any uncaught exception."""

    def __init__(self, page: Any) -> None:
        self.messages: list[tuple[str, str]] = []
        self.page_errors: list[str] = []
        page.on("console", lambda m: self.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    @property
    def errors(self) -> list[str]:
        return [text for kind, text in self.messages if kind == "error"] + self.page_errors


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, Console]]]:
    """``open_page(url, width=..., height=...)`` → (page, console), loaded and ready."""
    contexts: list[Any] = []

    def open_(url: str, width: int = 1024, height: int = 900) -> tuple[Any, Console]:
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        contexts.append(context)
        context.set_default_timeout(LONG_MS)
        page = context.new_page()
        console = Console(page)
        page.goto(url + "/")
        page.wait_for_function("window.chattts !== undefined")
        return page, console

    yield open_
    for context in contexts:
        context.close()


def state(page: Any, path: str = "") -> Any:
    """The page's own state, ``window.chattts`` (or one of its fields)."""
    return page.evaluate(f"window.chattts{path}")


def wait_js(page: Any, expr: str, timeout_ms: int = LONG_MS) -> None:
    page.wait_for_function(expr, timeout=timeout_ms)


class LogCapture(logging.Handler):
    """Every record of every logger at INFO and above (uvicorn.access included)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append(record)

    def snapshot(self) -> list[logging.LogRecord]:
        with self._lock:
            return list(self.records)

    def requests(self, route: str) -> list[dict[str, Any]]:
        """The request log lines (``chattts_server.request``) of ``route``, as their fields."""
        return [
            {**r.fields, "created": r.created}  # type: ignore[attr-defined]
            for r in self.snapshot()
            if r.name == "chattts_server.request" and r.fields.get("route") == route  # type: ignore[attr-defined]
        ]

    def wait_request(
        self, route: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for fields in self.requests(route):
                if pred(fields):
                    return fields
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no request log line for {route} matched: {self.requests(route)}"
                )
            time.sleep(0.01)


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Captures all loggers at INFO: the root logger and any that do not propagate to it."""
    handler = LogCapture()
    root = logging.getLogger()
    names = (
        "uvicorn",
        "uvicorn.access",
        "uvicorn.error",
        "chattts_server",
        "chattts_server.request",
    )
    named = [logging.getLogger(n) for n in names]
    saved = [(lg, lg.level) for lg in [root, *named]]
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    extra = [lg for lg in named if not lg.propagate]
    for lg in named:
        if lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    for lg in extra:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for lg in extra:
            lg.removeHandler(handler)
        for lg, level in saved:
            lg.setLevel(level)
