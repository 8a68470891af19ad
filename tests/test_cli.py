"""The CLI in separate processes: determinism across processes, streaming equals non-streaming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from chattts_server.audio import float_to_int16
from chattts_server.engine import ChatTTSEngine, SynthesisRequest


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chattts_server.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_synth_is_identical_across_processes_and_modes(
    tmp_path: Path, tiny_model_dir: Path, engine: ChatTTSEngine
) -> None:
    common = [
        "Hello there. 你好。",
        "--model-dir",
        str(tiny_model_dir),
        "--seed",
        "4",
        "--manual-seed",
        "9",
        "--max-new-tokens",
        "24",
    ]
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    r1 = cli("synth", *common, "-o", str(a))
    r2 = cli("synth", *common, "-o", str(b), "--stream")
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    assert "segment 2/2" in r2.stderr
    pa, rate = sf.read(a, dtype="int16")
    pb, _ = sf.read(b, dtype="int16")
    assert rate == 24000 and pa.size > 0
    assert np.array_equal(pa, pb)
    # and the same samples as this process's engine
    req = SynthesisRequest("Hello there. 你好。", seed=4, manual_seed=9, max_new_tokens=24)
    here = np.concatenate([c.pcm for c in engine.synthesize(req)])
    assert np.array_equal(pa, float_to_int16(here))


def test_synth_bad_input_exits_nonzero_with_the_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    r = cli(
        "synth",
        "hi",
        "-o",
        str(tmp_path / "x.wav"),
        "--model-dir",
        str(tiny_model_dir),
        "--speed",
        "7",
    )
    assert r.returncode == 2
    assert "out_of_range" in r.stderr and "speed" in r.stderr


def test_synth_without_model_explains(tmp_path: Path) -> None:
    r = cli("synth", "hi", "-o", str(tmp_path / "x.wav"), "--model-dir", str(tmp_path / "none"))
    assert r.returncode == 2
    assert "make-test-model" in r.stderr and "Traceback" not in r.stderr


def test_make_test_model(tmp_path: Path) -> None:
    r = cli("make-test-model", str(tmp_path / "m"), "--size", "tiny")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "chattts-server-model.json").is_file()
    assert (tmp_path / "m" / "asset" / "tokenizer" / "tokenizer.json").is_file()
    manifest = json.loads((tmp_path / "m" / "chattts-server-model.json").read_text())
    assert manifest["layer_scale"] == 1.0  # trained-like decoders unless asked otherwise
    r = cli("make-test-model", str(tmp_path / "i"), "--initial-layer-scales")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "i" / "chattts-server-model.json").read_text())
    assert manifest["layer_scale"] is None


def test_the_cli_and_the_engine_package_import_without_torch() -> None:
    """torch (seconds to import) loads when an engine is made, not for ``--help`` or ``say``."""
    import subprocess
    import sys

    code = (
        "import sys, chattts_server.cli, chattts_server.settings, chattts_server.engine, "
        "chattts_server.server; print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'ChatTTS', 'transformers'}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_serve_has_a_flag_for_every_setting_and_readme_its_table() -> None:
    """Settings are declared once: flags and README's table are made from them."""
    from pathlib import Path

    from chattts_server.cli import build_parser
    from chattts_server.server.main import settings_from_args
    from chattts_server.settings import Settings, markdown_table

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {s for a in serve._actions for s in a.option_strings}
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in flags, name
    args = build_parser().parse_args(
        ["serve", "--max-url-bytes", "2048", "--no-warmup", "--api-keys", "k1", "k2",
         "--send-timeout-s", "2.5", "--device", "cpu"]
    )  # fmt: skip
    s = settings_from_args(args)
    assert (s.max_url_bytes, s.warmup, s.api_keys, s.send_timeout_s, s.device) == (
        2048, False, ["k1", "k2"], 2.5, "cpu"
    )  # fmt: skip
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- settings table: begin -->\n")[1].split("<!-- settings table: end")[0]
    assert table == markdown_table(), "README's table is stale: python -m chattts_server.settings"
