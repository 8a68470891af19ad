"""The container image's tests (`make image-test`; `make test` leaves this folder out).

They run the image that tools/image.sh built (env IMAGE, default
localhost/chattts-server:latest) with podman, as the server would be run: a generated tiny test
model mounted read-only at /models. Without podman or the image they skip, except under
CI=true, where that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "localhost/chattts-server:latest")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "deploy" / "container" / "containers.conf"))


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def image() -> str:
    missing = None
    if shutil.which("podman") is None:
        missing = "podman is not installed (make image-test installs it as root)"
    elif podman("image", "exists", IMAGE, check=False).returncode != 0:
        missing = f"no image {IMAGE} (make image builds it)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return IMAGE


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny test model readable by the image's unprivileged user."""
    from chattts_server.engine.testmodel import make_test_model

    root = make_test_model(tmp_path_factory.mktemp("image-model"), "tiny", seed=0)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture
def name() -> Iterator[str]:
    """A container name, its container removed afterwards whatever happened."""
    value = f"chattts-test-{uuid.uuid4().hex[:10]}"
    yield value
    podman("rm", "-f", "-v", "-t", "0", value, check=False)


@pytest.fixture(scope="session")
def volume() -> Iterator[str]:
    """A named volume for /data (podman copies the image's /data, owner included, into it)."""
    value = f"chattts-test-data-{uuid.uuid4().hex[:10]}"
    podman("volume", "create", value)
    yield value
    podman("volume", "rm", "-f", value, check=False)
