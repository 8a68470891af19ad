"""Shared fixtures: one generated tiny ChatTTS checkpoint and one loaded engine per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chattts_server.engine.testmodel import make_test_model

    return make_test_model(tmp_path_factory.mktemp("tiny-model"), "tiny", seed=0)


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path):
    from chattts_server.engine import ChatTTSEngine, EngineConfig

    eng = ChatTTSEngine(EngineConfig(model_dir=str(tiny_model_dir), max_new_tokens=48))
    eng.load()
    yield eng
    eng.close()
