"""The blocking client is generated from the asyncio one (tools/unasync.py): the committed
``_sync.py`` must be what the script makes of ``_async.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "unasync.py"


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    unasync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unasync)
    expected = unasync.generate(unasync.SOURCE.read_text(encoding="utf-8"))
    if unasync.TARGET.read_text(encoding="utf-8") != expected:
        pytest.fail("client/_sync.py is not generated from _async.py: run python tools/unasync.py")
