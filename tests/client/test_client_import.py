"""The SDK imports with httpx alone: no torch, numpy, or server-side package."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import chattts_server.client, chattts_server.client.cli
heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "fastapi", "pydantic",
         "ChatTTS", "av", "soundfile") or m.startswith(("chattts_server.audio",
         "chattts_server.engine", "chattts_server.server", "chattts_server.settings"))]
print(",".join(sorted(heavy)))
"""


def test_client_imports_without_heavy_dependencies() -> None:
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
