"""The layers stay as ARCHITECTURE.md draws them (issue 15): checked on the source, not by
convention."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "chattts_server"


def imports(path: Path) -> set[str]:
    """The modules a file imports, made absolute (``..engine`` → ``chattts_server.engine``)."""
    package = ["chattts_server", *path.relative_to(SRC).parent.parts]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def test_no_engine_module_but_the_generator_imports_the_test_model() -> None:
    for path in (SRC / "engine").glob("*.py"):
        if path.name != "testmodel.py":
            assert "chattts_server.engine.testmodel" not in imports(path), path.name


def test_dependencies_point_one_way() -> None:
    for path in SRC.rglob("*.py"):
        found = imports(path)
        layer = path.relative_to(SRC).parts[0]
        if layer in ("engine", "audio"):
            assert not any(m.startswith("chattts_server.server") for m in found), path
        if layer == "client":  # the SDK needs httpx only
            assert not any(
                m.startswith(("chattts_server.server", "chattts_server.engine",
                              "chattts_server.audio", "torch", "numpy"))
                for m in found
            ), path  # fmt: skip
        assert not any(m.startswith(("tests", "conftest")) for m in found), path


TORCH_WORLD = ("torch", "torchaudio", "transformers", "ChatTTS", "vocos", "numba")
TORCH_MODULES = {  # the PyTorch engine and what needs torch by its nature
    "engine/chattts_engine.py",
    "engine/torch_step.py",
    "engine/testmodel.py",
    "engine/onnx/export.py",
}


def test_only_the_torch_engine_imports_torch() -> None:
    """The torch-free install (``[onnx]``) imports everything else: no module outside the torch
    engine names torch, transformers or ChatTTS in any import, a function's included — except
    the lazy ones listed here, each on a path the ONNX engine never takes."""
    lazy = {  # module → where torch is imported inside a function, and why it is safe
        "engine/voices.py",  # spk_emb_from_seed: the torch engine's own seed voices
        "engine/loader.py",  # ChatTTS's config and asset check: the torch engine's loading
        "engine/onnx/prompt.py",  # export_tokenizer: export-onnx only
    }
    for path in SRC.rglob("*.py"):
        name = path.relative_to(SRC).as_posix()
        if name in TORCH_MODULES or name in lazy:
            continue
        found = imports(path)
        assert not any(m.split(".")[0] in TORCH_WORLD for m in found), name
