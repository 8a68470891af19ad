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
