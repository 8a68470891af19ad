"""Finding and verifying ChatTTS weights.

Sources, in order: ``model_dir`` (ChatTTS's own asset layout; official weights are verified with
ChatTTS's own sha256 map, generated test models by their manifest), then ChatTTS's own hub
download when ``allow_download`` is set. When neither works, :class:`ModelLoadError` says where
it looked and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ModelInfo
from .errors import ModelLoadError

log = logging.getLogger(__name__)

# A generated test model (engine/testmodel.py) carries this manifest; only it skips the sha256
# check of official weights.
MANIFEST_NAME = "chattts-server-model.json"
MANIFEST_KIND = "chattts-server-test-model"

ASSET_FILES = (
    "asset/Vocos.safetensors",
    "asset/DVAE.safetensors",
    "asset/Decoder.safetensors",
    "asset/Embed.safetensors",
    "asset/gpt/config.json",
    "asset/gpt/model.safetensors",
    "asset/tokenizer",
)


@dataclass(frozen=True)
class ResolvedModel:
    root: Path
    info: ModelInfo
    config_overrides: dict[str, Any]

    def paths(self) -> dict[str, str]:
        """Keyword arguments for ``Chat._load``."""
        a = self.root / "asset"
        return {
            "vocos_ckpt_path": str(a / "Vocos.safetensors"),
            "dvae_ckpt_path": str(a / "DVAE.safetensors"),
            "gpt_ckpt_path": str(a / "gpt"),
            "embed_path": str(a / "Embed.safetensors"),
            "decoder_ckpt_path": str(a / "Decoder.safetensors"),
            "tokenizer_path": str(a / "tokenizer"),
        }


def advice(looked_in: str) -> str:
    return (
        f"No usable ChatTTS model: {looked_in}.\n"
        "Ways forward:\n"
        "  1. Download the official weights (Hugging Face repo 2Noise/ChatTTS, the asset/ "
        "folder) and point --model-dir (env CHATTTS_SERVER_MODEL_DIR) at the folder that holds "
        "asset/.\n"
        "  2. Let ChatTTS's own hub download run (needs network; on by default without "
        "--model-dir, env CHATTTS_SERVER_ALLOW_DOWNLOAD).\n"
        "  3. Try the pipeline without real weights: `chattts-server make-test-model DIR --size "
        "tiny` then --model-dir DIR (random weights: noise, not speech)."
    )


def resolve(model_dir: str | Path | None, allow_download: bool, chat: Any) -> ResolvedModel:
    """Locate and verify the weights; raise :class:`ModelLoadError` with advice otherwise."""
    if model_dir is not None:
        return _from_dir(Path(model_dir).expanduser(), chat)
    if not allow_download:
        raise ModelLoadError(advice("no --model-dir given and the hub download is disabled"))
    log.info("no --model-dir: trying ChatTTS's hub download")
    try:
        path = chat.download_models(source="huggingface")
    except Exception as exc:  # network errors of every kind
        log.warning("hub download failed: %s", exc)
        path = None
    if path is None:
        raise ModelLoadError(advice("the hub download (2Noise/ChatTTS) failed or is unreachable"))
    resolved = _from_dir(Path(path), chat)
    return ResolvedModel(resolved.root, _with_source(resolved.info, "hub"), {})


def _with_source(info: ModelInfo, source: str) -> ModelInfo:
    return ModelInfo(source, info.path, info.is_test_model, info.size, info.fingerprint)


def _from_dir(root: Path, chat: Any) -> ResolvedModel:
    if not root.is_dir():
        raise ModelLoadError(advice(f"model directory {root} does not exist"))
    missing = [f for f in ASSET_FILES if not (root / f).exists()]
    if missing:
        raise ModelLoadError(advice(f"{root} lacks {', '.join(missing)}"))
    manifest = read_manifest(root)
    if manifest is not None:
        # A generated test model: ChatTTS's sha256 map cannot match random weights, so the
        # manifest's own hashes are the identity; only this check is skipped.
        log.warning("loading a generated TEST model from %s: random weights, noise", root)
        fp = _fingerprint(manifest["files"])
        info = ModelInfo("test-model", str(root), True, manifest.get("size"), fp)
        return ResolvedModel(root, info, manifest.get("config", {}))
    from ChatTTS.utils import check_all_assets

    if not check_all_assets(root, chat.sha256_map, update=False):
        raise ModelLoadError(
            advice(f"{root} holds files whose sha256 does not match ChatTTS's official weights")
        )
    info = ModelInfo("model-dir", str(root), False, None, _fingerprint(chat.sha256_map))
    return ResolvedModel(root, info, {})


def _fingerprint(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The test-model manifest of ``directory``, or None for a real (official) model."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("kind") != MANIFEST_KIND:
        return None
    return manifest


def build_config(overrides: dict[str, Any] | None = None) -> Any:
    """A fresh ChatTTS ``Config`` with ``overrides`` applied (nested dicts).

    Builds new dataclass instances throughout: ChatTTS's Config shares its default sub-objects
    between instances, so changing them in place would leak into every later ``Chat``.
    """
    from ChatTTS.config import Config

    return _build(Config(), overrides or {})


def _build(default: Any, overrides: dict[str, Any]) -> Any:
    import copy
    import dataclasses

    cls = type(default)
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            kwargs[f.name] = _build(value, overrides.get(f.name, {}))
        elif f.name in overrides:
            v = overrides[f.name]
            kwargs[f.name] = tuple(v) if isinstance(value, tuple) else v
        else:
            kwargs[f.name] = copy.deepcopy(value)
    return cls(**kwargs)
