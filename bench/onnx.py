"""The ONNX engine against the PyTorch engine and stock ChatTTS, on the same full-size weights.

    .venv/bin/python -m bench.onnx [--tokens 256] [--runs 3] [--model DIR]

One run measures every variant, each in a process of its own (its peak RSS is its own): stock
ChatTTS (``Chat.infer``), the PyTorch engine with fp32 (oneDNN-packed), bf16 and dynamic-int8
GPT weights, and the ONNX engine on fp32, int8 and int4 exports (``MatMulNBits``, accuracy
level 4). Per variant: single-stream real-time factor (wall time / audio time for a fixed
number of GPT steps, median of ``--runs``), time to first streamed audio, 4 concurrent
requests (audio seconds per wall second), peak RSS, load time, and — on the same prompt and
the same 200 teacher-forced tokens — the logits' max abs error and top-1 agreement against the
PyTorch engine's fp32. Plus the installed size of a torch-free venv (``[onnx]``) against the
full development venv. Results: ``bench/results/onnx.json`` and ``onnx.md``.

Random weights: the logits' error and agreement depend on how peaked trained logits are; the
figures say how far each variant moves from fp32 on this model, not what a listener hears.
Speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = Path(os.environ.get("CHATTTS_BENCH_CACHE", Path.home() / ".cache" / "chattts-bench"))
TEXT = "Benchmarking the engines on the same weights, one sentence at a time."
VARIANTS = ("torch-fp32", "torch-bf16", "torch-int8", "onnx-fp32", "onnx-int8", "onnx-int4",
            "stock")  # fmt: skip
STEPS_FORCED = 200
LONG = 1024  # a long segment's GPT steps: does the step slow down as the KV cache grows?
LONG_VARIANTS = ("torch-fp32", "onnx-fp32", "onnx-int8", "onnx-int4")


# --- the child: one variant ------------------------------------------------------------------


def _engine(variant: str, model: Path, exports: Path) -> Any:
    from chattts_server.engine import EngineConfig, create_engine

    kind, weights = variant.split("-")
    if kind == "onnx":
        cfg = EngineConfig(engine="onnx", onnx_dir=str(exports / weights), max_new_tokens=4096)
    else:
        dtype = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}[weights]
        cfg = EngineConfig(model_dir=str(model), max_new_tokens=4096, gpt_dtype=dtype)
    return create_engine(cfg)


def _forced_logits(engine: Any, steps: int) -> np.ndarray:
    """Logits [steps + 1, vq, n] for a fixed prompt and fixed (seeded random) tokens."""
    from chattts_server.engine import SynthesisRequest
    from chattts_server.engine.batching import Generation, Sampling

    p = engine._prepare(SynthesisRequest(TEXT, seed=1))
    emb = engine.batcher.call(engine._in_session, engine._prompt, p.segments[0].text, p, None,
                              None)  # fmt: skip
    vm = engine._voice_model()
    tokens = np.random.default_rng(0).integers(0, vm.num_audio_tokens - 1, (steps, vm.num_vq))
    parts = engine.parts

    def run() -> np.ndarray:
        row = parts.new_row(Generation(emb, Sampling(max_new_tokens=steps + 1)))
        with parts.session():
            out = [np.asarray(parts.prefill(row, emb)[1][0], np.float32)]
            for i in range(steps):
                logits = parts.step([row], tokens[i][None].astype(np.int64))[1]
                out.append(np.asarray(logits[0], np.float32))
        return np.stack(out)

    return engine.batcher.call(run)


def _synth(engine: Any, n: int, incremental: bool = False, first_only: bool = False) -> float:
    from chattts_server.engine import SynthesisRequest

    req = SynthesisRequest(TEXT, seed=1, manual_seed=7, min_new_tokens=n, max_new_tokens=n,
                           incremental=incremental)  # fmt: skip
    started = time.perf_counter()
    chunks = engine.synthesize(req)
    try:
        for _ in chunks:
            if first_only:
                break
    finally:
        chunks.close()
    return time.perf_counter() - started


def child(variant: str, model: Path, exports: Path, tokens: int, runs: int, ref: Path) -> None:
    audio_s = tokens * 512 / 24000
    started = time.perf_counter()
    out: dict[str, Any] = {"variant": variant}
    if variant == "stock":
        out.update(_stock(model, tokens, runs))
    else:
        engine = _engine(variant, model, exports)
        engine.load()
        out["load_s"] = round(time.perf_counter() - started, 2)
        _synth(engine, 16)
        single = statistics.median(_synth(engine, tokens) for _ in range(runs))
        out["single_stream"] = {"seconds": round(single, 3), "rtf": round(single / audio_s, 3)}
        first = statistics.median(_synth(engine, tokens, True, True) for _ in range(runs))
        out["time_to_first_audio_s"] = round(first, 3)
        wall = _concurrent(engine, tokens, 4)
        out["concurrent_4"] = {
            "seconds": round(wall, 2),
            "audio_seconds_per_second": round(4 * audio_s / wall, 3),
        }
        if variant in LONG_VARIANTS:
            steps: list[float] = []
            listener = lambda _n, took: steps.append(took)  # noqa: E731
            engine.add_step_listener(listener)
            _synth(engine, LONG)
            engine.remove_step_listener(listener)
            out["step_ms_by_position"] = {
                "first_64": round(1000 * statistics.median(steps[1:65]), 1),
                f"last_64_of_{LONG}": round(1000 * statistics.median(steps[-64:]), 1),
            }
        logits = _forced_logits(engine, STEPS_FORCED)
        if variant == "torch-fp32":
            np.save(ref, logits)
        else:
            base = np.load(ref)
            out["vs_torch_fp32"] = {
                "logit_max_abs_error": float(np.abs(base - logits).max()),
                "top1_agreement_teacher_forced": float(
                    np.mean(base.argmax(-1) == logits.argmax(-1))
                ),
                "steps": STEPS_FORCED,
            }
        engine.close()
    out["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(out), flush=True)


def _peak_rss_mb() -> int:
    """This process's peak RSS (VmHWM: ru_maxrss would include the parent's, kept over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _concurrent(engine: Any, tokens: int, n: int) -> float:
    threads = [threading.Thread(target=_synth, args=(engine, tokens)) for _ in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def _stock(model: Path, tokens: int, runs: int) -> dict[str, Any]:
    import logging

    import ChatTTS
    import torch

    from chattts_server.engine.loader import build_config, resolve

    started = time.perf_counter()
    chat = ChatTTS.Chat(logging.getLogger("stock"))
    resolved = resolve(str(model), False, chat)
    chat.config = build_config(resolved.config_overrides)
    chat._load(device=torch.device("cpu"), **resolved.paths())
    load = time.perf_counter() - started
    params = ChatTTS.Chat.InferCodeParams(manual_seed=7, min_new_token=tokens,
                                          max_new_token=tokens, show_tqdm=False)  # fmt: skip

    def once() -> float:
        t = time.perf_counter()
        chat.infer(TEXT, skip_refine_text=True, params_infer_code=params)
        return time.perf_counter() - t

    once()
    single = statistics.median(once() for _ in range(runs))
    return {
        "load_s": round(load, 2),
        "single_stream": {
            "seconds": round(single, 3),
            "rtf": round(single / (tokens * 512 / 24000), 3),
        },
    }


# --- the parent ---------------------------------------------------------------------------------


def exports_for(model: Path, root: Path) -> Path:
    """fp32/int8/int4 exports of ``model`` under ``root``, made unless current."""
    from chattts_server.engine.onnx.export import ensure_export

    for weights in ("fp32", "int8", "int4"):
        ensure_export(model, root / weights, weights)
    return root


def venv_sizes() -> dict[str, Any]:
    """MB installed: this development venv (torch + onnx + tools) and a fresh ``[onnx]`` one."""

    def size(path: Path) -> int:
        out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])

    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{ROOT}[onnx]"],
                       check=True, capture_output=True)  # fmt: skip
        onnx_only = size(venv)
        has_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"],
                                   capture_output=True).returncode == 0  # fmt: skip
    return {
        "dev_venv_mb": size(ROOT / ".venv"),
        "onnx_only_venv_mb": onnx_only,
        "onnx_only_has_torch": has_torch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=256, help="GPT steps per request")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, help="another checkpoint (smoke: tiny)")
    parser.add_argument("--only", nargs="+", choices=VARIANTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--exports", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ref", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from chattts_server.engine.testmodel import ensure_test_model

    model = args.model or ensure_test_model(CACHE / "full", "full")
    if args.child:
        child(args.child, model, args.exports, args.tokens, args.runs, args.ref)
        return
    exports = exports_for(model, (CACHE if not args.model else model.parent) / "onnx-exports")
    ref = Path(tempfile.mkdtemp()) / "ref.npy"
    name = "onnx" if not args.model else "onnx-smoke"
    out_path = (RESULTS if not args.model else CACHE) / f"{name}.json"
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "model": str(model),
        "tokens": args.tokens,
        "audio_seconds": round(args.tokens * 512 / 24000, 3),
        "runs": args.runs,
        "text": TEXT,
        "variants": {},
        "load_average_1min": {},
    }
    variants = args.only or VARIANTS
    if "torch-fp32" not in variants:
        variants = ("torch-fp32", *variants)  # the reference logits
    for v in variants:
        before = os.getloadavg()[0]
        cmd = [sys.executable, "-m", "bench.onnx", "--child", v, "--exports", str(exports),
               "--ref", str(ref), "--tokens", str(args.tokens), "--runs", str(args.runs),
               *(["--model", str(args.model)] if args.model else [])]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            result["variants"][v] = {"error": proc.stderr[-2000:]}
        else:
            result["variants"][v] = json.loads(line[-1][7:])
        result["load_average_1min"][v] = [round(before, 2), round(os.getloadavg()[0], 2)]
        print(v, json.dumps(result["variants"][v]), flush=True)
        out_path.write_text(json.dumps(result, indent=2) + "\n")
    result["install"] = venv_sizes()
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    out_path.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# ONNX engine vs PyTorch engine vs stock ChatTTS ({r['machine']})",
        "",
        f"Full-size generated model (random weights), {r['tokens']} GPT steps per request "
        f"({r['audio_seconds']} s of audio), median of {r['runs']}. RTF = wall / audio "
        "(≤ 1 is real time). Logit figures: 200 teacher-forced steps against the PyTorch "
        "engine's fp32 on the same prompt and tokens.",
        "",
        "| variant | RTF | first audio (s) | 4 concurrent (audio s/s) | peak RSS (MB) | "
        "load (s) | max logit err | top-1 agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        if "error" in v:
            lines.append(f"| {name} | failed | | | | | | |")
            continue
        vs = v.get("vs_torch_fp32", {})
        conc = v.get("concurrent_4", {}).get("audio_seconds_per_second", "")
        err = vs.get("logit_max_abs_error")
        top1 = vs.get("top1_agreement_teacher_forced")
        lines.append(
            f"| {name} | {v['single_stream']['rtf']} | {v.get('time_to_first_audio_s', '')} | "
            f"{conc} | {v['peak_rss_mb']} | {v.get('load_s', '')} | "
            f"{'' if err is None else f'{err:.2e}'} | {'' if top1 is None else f'{top1:.4f}'} |"
        )
    longs = {k: v["step_ms_by_position"] for k, v in r["variants"].items()
             if "step_ms_by_position" in v}  # fmt: skip
    if longs:
        lines += [
            "",
            f"GPT step (ms) early in a {LONG}-step segment and at its end (KV cache grown):",
            "",
            "| variant | first 64 steps | last 64 steps |",
            "|---|---|---|",
        ]
        for k, v in longs.items():
            first, last = v.values()
            lines.append(f"| {k} | {first} | {last} |")
    inst = r.get("install", {})
    if inst:
        lines += [
            "",
            f"Installed: development venv {inst['dev_venv_mb']} MB; `pip install "
            f"'chattts-server[onnx]'` {inst['onnx_only_venv_mb']} MB (torch importable: "
            f"{inst['onnx_only_has_torch']}).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
