"""Model sources: a test model loads through the real path; failures give one clear message."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from chattts_server.engine import ChatTTSEngine, EngineConfig, ModelLoadError
from chattts_server.engine.loader import MANIFEST_NAME, build_config, read_manifest


def load(model_dir: object, **kw: object) -> ChatTTSEngine:
    eng = ChatTTSEngine(EngineConfig(model_dir=model_dir, warmup=False, **kw))  # type: ignore[arg-type]
    eng.load()
    return eng


def test_missing_dir_names_it_and_the_ways_forward(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelLoadError) as exc:
        load(str(missing))
    msg = str(exc.value)
    assert str(missing) in msg
    assert "--model-dir" in msg and "make-test-model" in msg and "download" in msg


def test_no_dir_and_no_download_gives_advice() -> None:
    with pytest.raises(ModelLoadError) as exc:
        load(None, allow_download=False)
    assert "hub download is disabled" in str(exc.value)


def test_incomplete_dir_lists_missing_files(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "asset" / "DVAE.safetensors").unlink()
    with pytest.raises(ModelLoadError) as exc:
        load(str(broken))
    assert "asset/DVAE.safetensors" in str(exc.value)


def test_without_manifest_the_official_sha256_check_applies(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Only the manifest lets random weights skip ChatTTS's sha256 check."""
    copy = tmp_path / "no-manifest"
    shutil.copytree(tiny_model_dir, copy)
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(ModelLoadError) as exc:
        load(str(copy))
    assert "sha256" in str(exc.value)


def test_test_model_manifest_and_info(tiny_model_dir: Path, engine: ChatTTSEngine) -> None:
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None and manifest["size"] == "tiny"
    assert set(manifest["files"]) >= {"asset/Vocos.safetensors", "asset/gpt/model.safetensors"}
    info = engine.info
    assert info.model is not None and info.model.is_test_model and info.model.size == "tiny"
    assert info.device == "cpu" and engine.ready
    assert (
        json.loads((tiny_model_dir / "asset" / "gpt" / "config.json").read_text())[
            "num_hidden_layers"
        ]
        == 2
    )


def test_unavailable_cuda_is_a_clear_error(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError) as exc:
        load(str(tiny_model_dir), device="cuda")
    assert exc.value.code == "device_unavailable"


def test_full_size_config_matches_the_official_architecture() -> None:
    from chattts_server.engine.testmodel import TINY_CONFIG

    full, tiny = build_config(), build_config(TINY_CONFIG)
    assert (full.gpt.num_hidden_layers, full.gpt.hidden_size) == (20, 768)
    assert tiny.gpt.hidden_size == 64
    assert build_config().gpt.hidden_size == 768  # overrides never leak into the defaults
    for cfg in (full, tiny):
        assert cfg.decoder.idim == cfg.decoder.odim == cfg.gpt.hidden_size // 2
        assert cfg.dvae.vq.dim == 2 * cfg.dvae.decoder.idim == cfg.dvae.encoder.odim
        assert cfg.embed.hidden_size == cfg.gpt.hidden_size


def _layer_scales(path: Path) -> dict[str, float]:
    """Every ConvNeXt layer scale in a safetensors file (ChatTTS's ``.weight`` of its decoder
    blocks, Vocos' ``.gamma``), name → the distinct value it holds."""
    from safetensors.numpy import load_file

    out = {}
    for name, t in load_file(str(path)).items():
        if re.fullmatch(r".*\.gamma|.*decoder_block\.\d+\.weight", name):
            assert len(set(t.tolist())) == 1, name
            out[name] = float(t[0])
    return out


def test_generated_decoders_have_trained_like_layer_scales(tiny_model_dir: Path) -> None:
    """Every ConvNeXt block of both decoders at 1.0 (initialisation would leave 1e-6 / 1/8 and
    hide the streaming boundary error); the tiny model keeps the decoders' full depth."""
    manifest = read_manifest(tiny_model_dir)
    assert manifest is not None and manifest["layer_scale"] == 1.0
    asset = tiny_model_dir / "asset"
    decoder = _layer_scales(asset / "Decoder.safetensors")
    vocos = _layer_scales(asset / "Vocos.safetensors")
    dvae = _layer_scales(asset / "DVAE.safetensors")
    assert len(decoder) == 12 and len(vocos) == 8 and len(dvae) == 24  # encoder + decoder
    assert set(decoder.values()) == set(vocos.values()) == set(dvae.values()) == {1.0}


def test_initial_layer_scales_on_request_and_stale_caches_regenerate(tmp_path: Path) -> None:
    from chattts_server.engine.testmodel import ensure_test_model, make_test_model

    old = make_test_model(tmp_path / "m", "tiny", layer_scale=None)
    scales = _layer_scales(old / "asset" / "Decoder.safetensors")
    assert len(scales) == 12 and all(v == pytest.approx(1e-6) for v in scales.values())
    assert read_manifest(old)["layer_scale"] is None  # type: ignore[index]
    # a cache made with other scales (or by an older generator) is replaced ...
    ensure_test_model(old, "tiny")
    assert read_manifest(old)["layer_scale"] == 1.0  # type: ignore[index]
    # ... and a current one is kept as it is
    stamp = (old / MANIFEST_NAME).stat().st_mtime_ns
    ensure_test_model(old, "tiny")
    assert (old / MANIFEST_NAME).stat().st_mtime_ns == stamp


def test_ready_only_once_the_warm_up_is_done(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz follows ``ready``: it must not turn true between loading and warming up."""
    eng = ChatTTSEngine(EngineConfig(model_dir=str(tiny_model_dir), warmup=True))
    seen = []
    original = ChatTTSEngine._warm_up

    def warm_up(self: ChatTTSEngine) -> None:
        seen.append(self.ready)
        original(self)  # synthesizes on the loaded model: it need not be "ready" for that
        seen.append(self.ready)

    monkeypatch.setattr(ChatTTSEngine, "_warm_up", warm_up)
    assert not eng.ready
    eng.load()
    assert seen == [False, False] and eng.ready
    eng.close()
    assert not eng.ready
