"""The torch-free speaker math (engine/speakers.py) against torch and ChatTTS's own Speaker."""

from __future__ import annotations

import ast
import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ChatTTS.model.speaker import Speaker

from chattts_server.engine import speakers as sp
from chattts_server.engine.loader import build_config, read_manifest

# 0…999 and 1000 spread over the whole seed range, both ends included.
SEEDS = [
    *range(1000),
    *(int(s) for s in np.random.default_rng(20250101).integers(1000, 2**32 - 1, 998)),
    2**31,
    2**32 - 1,
]
SIZES = [768, 64, 16, 17, 100, 1000]  # the real model's hidden size, the tiny model's, others
SMALL_SIZES = [1, 2, 3, 7, 15]  # ATen's per-element path

X86 = platform.machine().lower() in ("x86_64", "amd64")
GLIBC = platform.libc_ver()[0] == "glibc"
# The kernel torch runs here: AVX-512 CPUs run the AVX2 one (normal_stub has no AVX-512 build).
HOST_KERNEL: sp.Kernel = (
    "avx2" if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else "scalar"
)
needs_known_kernel = pytest.mark.skipif(
    not X86 or (HOST_KERNEL == "scalar" and not GLIBC),
    reason="emulated: x86-64 torch with AVX2, or its scalar kernel with glibc's libm",
)


def torch_randn(n: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=torch.float32).numpy()


def torch_seed_voice(seed: int, speaker: Any) -> torch.Tensor:
    """The float16 values of engine/voices.py's ``spk_emb_from_seed`` (as it was when the
    torch-free module was written), before ``speaker._encode``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(speaker.dim, generator=gen, dtype=torch.float32)
    std, mean = speaker.std.cpu().float(), speaker.mean.cpu().float()
    return (noise * std + mean).to(torch.float16)


def assert_bits_equal(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == ref.dtype == np.float32 and ours.shape == ref.shape
    differ = ours.view(np.int32) != ref.view(np.int32)
    assert not differ.any(), (
        f"{int(differ.any(axis=-1).sum())} seeds, {int(differ.sum())} elements differ"
    )


# ------------------------------------------------------------------------------- torch.randn


@needs_known_kernel
@pytest.mark.parametrize("n", SIZES + SMALL_SIZES)
def test_randn_equals_torch_bit_for_bit(n: int) -> None:
    ours = sp.torch_randn_many(n, SEEDS, kernel=HOST_KERNEL)
    ref = np.stack([torch_randn(n, s) for s in SEEDS])
    assert_bits_equal(ours, ref)


@needs_known_kernel
def test_single_seed_form_agrees() -> None:
    for seed in (0, 7, 2**32 - 1):
        assert_bits_equal(sp.torch_randn(768, seed, kernel=HOST_KERNEL), torch_randn(768, seed))
    assert sp.torch_randn(0, 3).shape == (0,)
    assert sp.torch_randn_many(768, []).shape == (0, 768)


@pytest.mark.skipif(not (X86 and GLIBC), reason="the scalar kernel is emulated for glibc x86-64")
def test_scalar_kernel_equals_torch_without_avx2() -> None:
    """torch forced onto its non-AVX2 kernels (what a CPU without AVX2 runs)."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np, torch
        from chattts_server.engine import speakers as sp
        seeds = json.loads(sys.stdin.read())
        out = {"capability": torch.backends.cpu.get_cpu_capability()}
        for n in (768, 64, 17):
            ref = np.stack([
                torch.randn(n, generator=torch.Generator().manual_seed(s)).numpy() for s in seeds
            ])
            ours = sp.torch_randn_many(n, seeds, kernel="scalar")
            out[str(n)] = int((ref.view(np.int32) != ours.view(np.int32)).any(axis=1).sum())
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(SEEDS),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"capability": "DEFAULT", "768": 0, "64": 0, "17": 0}


def test_kernels_differ_and_arguments_are_checked() -> None:
    # Same seed, different CPUs, different torch voices: the emulation has to pick one.
    assert not np.array_equal(sp.torch_randn(768, 1), sp.torch_randn(768, 1, kernel="scalar"))
    with pytest.raises(ValueError, match="seed"):
        sp.torch_randn(16, -1)
    with pytest.raises(ValueError, match="seed"):
        sp.torch_randn(16, 2**32)
    with pytest.raises(ValueError, match="kernel"):
        sp.torch_randn(16, 1, kernel="sse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        sp.torch_randn(-1, 1)


# --------------------------------------------------------------------------- speaker strings


@pytest.fixture(params=["real", "tiny"], scope="module")
def model_config(request: pytest.FixtureRequest) -> Any:
    """The ChatTTS config the loader builds: the official model's, and the generated tiny
    test model's (its own spk_stat, hidden size 64)."""
    if request.param == "real":
        return build_config()
    manifest = read_manifest(request.getfixturevalue("tiny_model_dir"))
    assert manifest is not None
    return build_config(manifest["config"])


@pytest.fixture(scope="module")
def speaker(model_config: Any) -> Speaker:
    return Speaker(model_config.gpt.hidden_size, model_config.spk_stat)


@pytest.fixture(scope="module")
def stats(model_config: Any) -> sp.SpeakerStats:
    return sp.SpeakerStats.from_spk_stat(model_config.spk_stat)


def test_stats_are_speakers(speaker: Speaker, stats: sp.SpeakerStats) -> None:
    assert stats.dim == speaker.dim == stats.std.size == stats.mean.size
    assert stats.std.dtype == stats.mean.dtype == np.float16
    np.testing.assert_array_equal(stats.std, speaker.std.numpy())
    np.testing.assert_array_equal(stats.mean, speaker.mean.numpy())


def test_bad_spk_stat_is_refused() -> None:
    import pybase16384 as b14

    with pytest.raises(ValueError, match="2×dim"):
        sp.SpeakerStats.from_spk_stat(b14.encode_to_string(np.ones(3, np.float16).tobytes()))


@needs_known_kernel
def test_seed_voice_values_equal_torch(
    speaker: Speaker, stats: sp.SpeakerStats, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spk_emb_from_seed's float16 values for 250 seeds (the encoding is checked apart)."""
    monkeypatch.setattr(sp, "encode_spk_emb", lambda values: values.tobytes().hex())
    for seed in SEEDS[::8]:
        ref = torch_seed_voice(seed, speaker).numpy().tobytes().hex()
        assert sp.spk_emb_from_seed(seed, stats, kernel=HOST_KERNEL) == ref, seed


@needs_known_kernel
def test_seed_voice_strings_equal_torch(speaker: Speaker, stats: sp.SpeakerStats) -> None:
    for seed in (42, 2**32 - 1):  # few: LZMA preset 9e takes ~40 ms a string
        ref = speaker._encode(torch_seed_voice(seed, speaker))
        assert sp.spk_emb_from_seed(seed, stats, kernel=HOST_KERNEL) == ref


def test_spk_emb_encoding_is_speakers() -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(0, 2, 768).astype(np.float16)
    values[:4] = [0.0, -0.0, 65504.0, 6e-8]
    s = sp.encode_spk_emb(values)
    assert s == Speaker._encode(torch.from_numpy(values))
    assert sp.encode_spk_emb(values.astype(np.float32)) == s  # rounded to float16 first
    back = sp.decode_spk_emb(s)
    assert back.dtype == np.float16
    np.testing.assert_array_equal(back.view(np.uint16), Speaker._decode(s).view(np.uint16))
    np.testing.assert_array_equal(back.view(np.uint16), values.view(np.uint16))


def test_prompt_encoding_is_speakers() -> None:
    rng = np.random.default_rng(6)
    for shape in [(4, 37), (4, 0), (2, 300)]:
        tokens = rng.integers(0, 626, shape)
        s = sp.encode_prompt(tokens.astype(np.int32))
        assert s == Speaker.encode_prompt(torch.from_numpy(tokens))
        back = sp.decode_prompt(s)
        assert back.dtype == np.int32 and back.shape == shape
        np.testing.assert_array_equal(back, Speaker.decode_prompt(s).numpy())
        np.testing.assert_array_equal(back, tokens)
    with pytest.raises(ValueError, match="2-D"):
        sp.encode_prompt(np.arange(5))


def test_normalized_is_what_speaker_apply_writes(speaker: Speaker, stats: sp.SpeakerStats) -> None:
    """apply() normalises the decoded float16 tensor in float16, then writes it into the
    float32 embedding: that is the reference, exactly (not a float32 normalisation)."""
    dim, spk_id = stats.dim, 7
    strings = [sp.spk_emb_from_seed(seed, stats) for seed in (0, 1, 2)]
    strings.append(sp.encode_spk_emb(np.random.default_rng(3).normal(0, 5, dim)))
    for s in strings:
        emb = torch.zeros(1, 3, dim)
        ids = torch.tensor([[[1, 1, 1, 1], [spk_id] * 4, [2, 2, 2, 2]]])
        speaker.apply(emb, s, ids, spk_id, torch.device("cpu"))
        ours = sp.normalized(s)
        assert ours.dtype == np.float32 and ours.shape == (dim,)
        np.testing.assert_array_equal(ours, emb[0, 1].numpy())
        assert not emb[0, 0].any() and not emb[0, 2].any()
        as_float32 = F.normalize(torch.from_numpy(sp.decode_spk_emb(s)).float(), dim=0)
        assert np.abs(ours - as_float32.numpy()).max() < 1e-3  # float16 precision


def test_normalized_equals_half_normalize_on_hard_vectors() -> None:
    """Wide-range float16 vectors, where the order of the float32 sum of squares can decide the
    float16 norm (torch sums in order), and the degenerate ones."""
    rng = np.random.default_rng(8)
    vectors = [
        (rng.standard_normal(n) * np.exp(rng.uniform(-4, 4, n))).astype(np.float16)
        for n in (768, 64) * 150
    ]
    vectors += [np.zeros(8, np.float16), np.array([6e-8, 0], np.float16)]
    vectors += [np.array([60000, 60000, 1], np.float16)]  # the float16 norm overflows
    for v in vectors:
        ref = F.normalize(torch.from_numpy(v), p=2.0, dim=0, eps=1e-12).float().numpy()
        np.testing.assert_array_equal(sp.normalized(v), ref)


# --------------------------------------------------------------------------------- no torch


def test_module_never_imports_torch() -> None:
    tree = ast.parse(Path(sp.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {"__future__", "lzma", "math", "collections", "dataclasses", "typing",
                        "numpy", "pybase16384"}  # fmt: skip


@needs_known_kernel
def test_works_with_torch_blocked() -> None:
    """Import the package and the module with torch unimportable; every function runs."""
    script = textwrap.dedent(
        """
        import json, sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import chattts_server.engine
        from chattts_server.engine import speakers as sp
        args = json.loads(sys.stdin.read())
        stats = sp.SpeakerStats.from_spk_stat(args["spk_stat"])
        voice = sp.spk_emb_from_seed(42, stats, kernel=args["kernel"])
        prompt = sp.encode_prompt(sp.decode_prompt(sp.encode_prompt([[1, 2], [3, 4]])))
        print(json.dumps({
            "noise": sp.torch_randn(768, 42, kernel=args["kernel"]).tobytes().hex(),
            "small": sp.torch_randn(5, 42).tobytes().hex(),
            "voice": voice,
            "normalized": sp.normalized(voice).tobytes().hex(),
            "values": sp.decode_spk_emb(voice).tobytes().hex(),
            "prompt": prompt,
            "torch": [m for m in sys.modules if m == "torch" or m.startswith("torch.")],
        }))
        """
    )
    spk_stat = build_config().spk_stat
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps({"spk_stat": spk_stat, "kernel": HOST_KERNEL}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    speaker = Speaker(768, spk_stat)
    half = torch_seed_voice(42, speaker)
    assert got["torch"] == ["torch"]  # only the blocking None entry
    assert got["noise"] == torch_randn(768, 42).tobytes().hex()
    assert got["small"] == torch_randn(5, 42).tobytes().hex()
    assert got["voice"] == speaker._encode(half)
    assert got["values"] == half.numpy().tobytes().hex()
    normed = F.normalize(half, p=2.0, dim=0, eps=1e-12).float().numpy()
    assert got["normalized"] == normed.tobytes().hex()
    assert got["prompt"] == Speaker.encode_prompt(torch.tensor([[1, 2], [3, 4]]))
