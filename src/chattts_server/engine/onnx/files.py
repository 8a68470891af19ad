"""An exported ONNX model folder: its manifest, checked before anything is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import ModelInfo
from ..errors import ModelLoadError

MANIFEST = "manifest.json"
FORMAT = "chattts-server-onnx"
FORMAT_VERSION = 2  # 2: gpt.onnx returns the new positions' keys/values only
REQUIRED = ("gpt.onnx", "decoder.onnx", "embeddings.npz", "tokenizer.json", "homophones_map.json")


def advice(problem: str) -> str:
    return (
        f"No usable ONNX model: {problem}.\n"
        "Make one from a ChatTTS model folder with the full install (torch + onnx):\n"
        "  chattts-server export-onnx MODEL_DIR OUT_DIR [--weights fp32|int8|int4]\n"
        "then serve it with --engine onnx --onnx-dir OUT_DIR (env CHATTTS_SERVER_ENGINE=onnx, "
        "CHATTTS_SERVER_ONNX_DIR). Without real weights: `chattts-server make-test-model DIR "
        "--size tiny` first (random weights: noise, not speech)."
    )


@dataclass(frozen=True)
class OnnxModel:
    """A checked export folder."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, directory: str | Path | None) -> OnnxModel:
        if directory is None:
            raise ModelLoadError(advice("--onnx-dir was not given"), code="model_not_found")
        root = Path(directory).expanduser()
        path = root / MANIFEST
        if not path.is_file():
            raise ModelLoadError(advice(f"{root} has no {MANIFEST}"), code="model_not_found")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(advice(f"{path} is unreadable ({exc})")) from exc
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise ModelLoadError(
                advice(
                    f"{path} is not a version-{FORMAT_VERSION} export (format "
                    f"{manifest.get('format')!r}, version {manifest.get('version')!r}): "
                    "export it again with this version"
                ),
                code="model_load_failed",
            )
        missing = [f for f in REQUIRED if not (root / f).is_file()]
        if missing:
            raise ModelLoadError(
                advice(f"{root} lacks {', '.join(missing)}"), code="model_not_found"
            )
        for name, entry in manifest.get("files", {}).items():
            f = root / name
            if f.is_file() and f.stat().st_size != entry.get("bytes"):
                raise ModelLoadError(
                    advice(f"{f} has {f.stat().st_size} bytes, the manifest says {entry['bytes']}"),
                    code="model_load_failed",
                )
        return cls(root, manifest)

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.manifest["model"])

    @property
    def weights(self) -> str:
        return str(self.manifest["weights"])

    def path(self, name: str) -> Path:
        return self.root / name

    def info(self) -> ModelInfo:
        source = self.manifest["source"]
        return ModelInfo(
            source="onnx-export",
            path=str(self.root),
            is_test_model=bool(source.get("is_test_model")),
            size=source.get("size"),
            fingerprint=str(source["fingerprint"]),
        )
