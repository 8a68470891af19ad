"""Server tests use the root conftest's ``live`` server, ``http`` client and helpers, and
:mod:`pgtool`'s private PostgreSQL (``postgres``, ``pg_url``) for the PostgreSQL store.

Every test here that takes the engine (directly or through ``live``/``http``) runs on both
engines: the PyTorch one and the ONNX one on the same tiny model's export (none is torch-only;
``refine_text``, which the ONNX engine refuses, is tested on the engine and in the contract)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chattts_server.server.voicestore import VoiceStore, open_store
from pgtool import pg_url, postgres  # noqa: F401  (fixtures)


@pytest.fixture(scope="session", params=["torch", "onnx"])
def engine(request: pytest.FixtureRequest, engine: Any) -> Any:
    """Each engine in turn (session-wide: pytest runs the tests of one engine, then the
    other's); ``engine`` in the arguments is the root conftest's, the torch one."""
    return engine if request.param == "torch" else request.getfixturevalue("onnx_engine")


@dataclass(frozen=True)
class VoiceDB:
    """Where a test's voices live: SQLite in ``data_dir`` (``url`` None) or a PostgreSQL
    database of its own."""

    kind: str
    data_dir: Path
    url: str | None = None

    def serve_args(self) -> list[str]:
        url = ["--database-url", self.url] if self.url else []
        return ["--data-dir", str(self.data_dir), *url]

    def settings(self) -> dict[str, object]:
        return {"data_dir": str(self.data_dir), "database_url": self.url}

    def open(self) -> VoiceStore:
        """The store, opened as the server opens it."""
        return open_store(self.url, self.data_dir)


@pytest.fixture(params=["sqlite", "postgres"])
def voice_db(request: pytest.FixtureRequest, tmp_path: Path) -> VoiceDB:
    """Each store in turn: the tests that take it pass on both."""
    if request.param == "sqlite":
        return VoiceDB("sqlite", tmp_path)
    return VoiceDB("postgres", tmp_path, request.getfixturevalue("pg_url"))
