"""Chromium for the browser tests: Debian's ``chromium`` driven by Playwright (never a browser
that Playwright downloads). ``require_chromium()`` skips with the reason when it is missing,
except under ``CI=true``, where that is a failure (``make test`` installs it as root)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# headless, and quiet on a closed network (without these Chromium keeps dialling Google)
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


def require_chromium() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    reason = None
    if path is None:
        reason = "Debian's chromium is not installed (make test installs it when run as root)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (it is in the dev extras)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert path is not None
    return path
