"""The speed benchmark: our engine against stock ChatTTS, in one process, on the same weights.

    python -m bench.run [--quick] [--runs N]      (make bench)

Weights: a generated ``full`` test checkpoint (official sizes, random weights) in
``bench/.cache/full``, made on first use. Random weights rarely stop, so every run forces its
token count (``min_new_token = max_new_token = N``; 1 token = 512 samples = 21.3 ms of audio).
Stock means ``Chat.infer`` on a second ``Chat`` loaded from the same files, with its defaults
except ``skip_refine_text=True`` (our engine does not refine by default either; with its
defaults stock would first run up to 384 extra steps of the text GPT). Every figure is the median
of ``--runs`` runs, and each speed figure is also a ratio against stock measured side by side.
Results: ``bench/results/speed.json``, ``speed.md`` and ``speed.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
TEXT = "Benchmarks speak in a steady voice, one sentence at a time."
TOKEN_SECONDS = 512 / 24000
FIGURES = (
    "single_stream",
    "streaming",
    "decode_error",
    "precision",
    "concurrency",
    "server_overhead",
    "rss_growth",
)


def median_time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Bench:
    def __init__(self, model: Path, runs: int) -> None:
        import ChatTTS

        from chattts_server.engine import ChatTTSEngine, EngineConfig
        from chattts_server.engine.batching import Batcher
        from chattts_server.engine.loader import build_config, read_manifest, resolve

        self.runs = runs
        # One torch thread for every model here, stock included: each thread that runs parallel
        # torch ops keeps OpenMP workers, and more of them than cores slows every step.
        self.torch = Batcher(4)
        self.engine = ChatTTSEngine(
            EngineConfig(model_dir=str(model), max_new_tokens=4096), batcher=self.torch
        )
        self.engine.load()
        self.int8 = ChatTTSEngine(
            EngineConfig(model_dir=str(model), max_new_tokens=4096, gpt_dtype="int8"),
            batcher=self.torch,
        )
        self.int8.load()
        stock = ChatTTS.Chat(logging.getLogger("stock"))
        resolved = resolve(str(model), False, stock)
        stock.config = build_config(resolved.config_overrides)
        self.torch.call(stock._load, device=self.engine._chat.device, **resolved.paths())
        self.stock = stock
        self.spk = self.engine.speaker_for_seed(1)
        self.model_dir = model
        manifest = read_manifest(model) or {}
        self.layer_scale = manifest.get("layer_scale", "initial (1e-6 / 0.125)")

    # --- the two sides -------------------------------------------------------------------------

    def stock_params(self, n: int) -> Any:
        import ChatTTS

        return ChatTTS.Chat.InferCodeParams(
            spk_emb=self.spk, manual_seed=7, min_new_token=n, max_new_token=n, show_tqdm=False
        )

    def stock_full(self, n: int) -> np.ndarray:
        def run() -> Any:
            params = self.stock_params(n)
            return self.stock.infer(TEXT, skip_refine_text=True, params_infer_code=params)

        return np.asarray(self.torch.call(run)[0])

    def stock_stream(self, n: int) -> tuple[float, float]:
        """(time to first non-empty audio, total) of stock streaming (on the torch thread)."""

        def run() -> tuple[float, float]:
            started = time.perf_counter()
            first = None
            it = self.stock.infer(
                TEXT, stream=True, skip_refine_text=True, params_infer_code=self.stock_params(n)
            )
            for wav in it:
                if first is None and np.asarray(wav).size:
                    first = time.perf_counter() - started
            return first or float("nan"), time.perf_counter() - started

        return self.torch.call(run)

    def ours(self, n: int, incremental: bool = False, engine: Any = None) -> tuple[float, float]:
        from chattts_server.engine import SynthesisRequest

        req = SynthesisRequest(TEXT, spk_emb=self.spk, manual_seed=7, min_new_tokens=n,
                               max_new_tokens=n, incremental=incremental)  # fmt: skip
        started = time.perf_counter()
        first = None
        for _ in (engine or self.engine).synthesize(req):
            if first is None:
                first = time.perf_counter() - started
        return first or float("nan"), time.perf_counter() - started

    def stock_first_audio(self, n: int) -> float:
        """Time to stock streaming's first non-empty audio for ``n`` tokens, then stop it."""

        def run() -> float:
            started = time.perf_counter()
            it = self.stock.infer(
                TEXT, stream=True, skip_refine_text=True, params_infer_code=self.stock_params(n)
            )
            try:
                for wav in it:
                    if np.asarray(wav).size:
                        return time.perf_counter() - started
                return float("nan")
            finally:
                it.close()
                self.stock.context.set(False)  # closing sets ChatTTS's interrupt flag

        return self.torch.call(run)

    def first_audio(self, n: int, engine: Any) -> float:
        """Time to the first streamed audio of an ``n``-token request, then stop it."""
        from chattts_server.engine import SynthesisRequest

        req = SynthesisRequest(TEXT, spk_emb=self.spk, manual_seed=7, min_new_tokens=n,
                               max_new_tokens=n, incremental=True)  # fmt: skip
        started = time.perf_counter()
        chunks = engine.synthesize(req)
        try:
            next(chunks)
            return time.perf_counter() - started
        finally:
            chunks.close()  # ends the generation (cancelled) before the next run

    # --- figures ---------------------------------------------------------------------------------

    def single_stream(self, n: int) -> dict[str, Any]:
        self.ours(8)  # warm
        stock = median_time(lambda: self.stock_full(n), self.runs)
        ours = statistics.median(self.ours(n)[1] for _ in range(self.runs))
        int8 = statistics.median(self.ours(n, engine=self.int8)[1] for _ in range(self.runs))
        audio = n * TOKEN_SECONDS
        return {
            "ours_int8_s": round(int8, 2),
            "ours_int8_rtf": round(int8 / audio, 2),
            "int8_speedup_vs_stock": round(stock / int8, 2),
            "tokens": n,
            "audio_s": round(audio, 2),
            "stock_s": round(stock, 2),
            "ours_s": round(ours, 2),
            "stock_rtf": round(stock / audio, 2),
            "ours_rtf": round(ours / audio, 2),
            "speedup_vs_stock": round(stock / ours, 2),
        }

    def streaming(self, n: int) -> dict[str, Any]:
        stock, ours, whole = [], [], []
        for _ in range(self.runs):  # interleaved, so drift of the machine hits every side
            stock.append(self.stock_stream(n))
            ours.append(self.ours(n, incremental=True))
            whole.append(self.ours(n)[1])
        s_first = statistics.median(s[0] for s in stock)
        s_total = statistics.median(s[1] for s in stock)
        o_first = statistics.median(o[0] for o in ours)
        o_total = statistics.median(o[1] for o in ours)
        o_whole = statistics.median(whole)
        return {
            "tokens": n,
            "audio_s": round(n * TOKEN_SECONDS, 2),
            "stock_ttfa_s": round(s_first, 2),
            "ours_ttfa_s": round(o_first, 2),
            "ttfa_ratio_vs_stock": round(o_first / s_first, 3),
            "stock_stream_total_s": round(s_total, 2),
            "ours_stream_total_s": round(o_total, 2),
            "ours_whole_s": round(o_whole, 2),
            "stream_total_vs_our_whole": round(o_total / o_whole, 3),
            "stock_stream_total_vs_our_whole": round(s_total / o_whole, 3),
        }

    def concurrency(self, n: int, levels: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
        """k requests at once, each on its own thread (as the server runs them): aggregate
        audio seconds per wall second, and the GPT rows per step the batcher ran."""
        out: dict[str, Any] = {"tokens_per_request": n, "max_batch": self.engine.config.max_batch}
        base = None
        rows: list[int] = []
        self.engine.batcher.listeners.append(lambda k, _: rows.append(k))
        for k in levels:
            rates = []
            for _ in range(self.runs):
                rows.clear()
                threads = [threading.Thread(target=self.ours, args=(n,)) for _ in range(k)]
                started = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                rates.append(k * n * TOKEN_SECONDS / (time.perf_counter() - started))
            rate = statistics.median(rates)
            base = base or rate
            out[f"audio_s_per_wall_s_at_{k}"] = round(rate, 3)
            out[f"gain_at_{k}"] = round(rate / base, 2)
            out[f"mean_rows_per_step_at_{k}"] = round(statistics.mean(rows), 2)
        self.engine.batcher.listeners.clear()
        return out

    def server_overhead(self, n: int) -> dict[str, Any]:
        import httpx

        from chattts_server.server import create_app
        from chattts_server.settings import Settings

        from .load import serve_in_thread

        settings = Settings(data_dir=CACHE / "data", max_new_tokens=4096, log_level="warning")
        body = {"text": TEXT, "spk_emb": self.spk, "manual_seed": 7,
                "extensions": {"min_new_tokens": n, "max_new_tokens": n}}  # fmt: skip
        http_s, direct_s = [], []
        with (
            serve_in_thread(create_app(settings, self.engine)) as url,
            httpx.Client(base_url=url, timeout=600) as c,
        ):
            c.post("/v1/tts", json=body).raise_for_status()  # warm
            for _ in range(self.runs):  # interleaved, so drift of the machine hits both sides
                started = time.perf_counter()
                c.post("/v1/tts", json=body).raise_for_status()
                http_s.append(time.perf_counter() - started)
                direct_s.append(self.ours(n)[1])
        http, direct = statistics.median(http_s), statistics.median(direct_s)
        return {"tokens": n, "http_wav_s": round(http, 3), "direct_s": round(direct, 3),
                "http_vs_direct": round(http / direct, 3)}  # fmt: skip

    def precision(self, n: int) -> dict[str, Any]:
        """Our fp32 (oneDNN-packed), bf16 and int8 GPT against stock ChatTTS's fp32 on the same
        weights: speed, agreement of the sampled tokens with the same seed, and the logit error
        on identical (teacher-forced) inputs."""
        from chattts_server.engine import ChatTTSEngine, EngineConfig

        out: dict[str, Any] = {"tokens": n, "reference": "stock ChatTTS fp32, same weights"}
        t32 = statistics.median(self.ours(n)[1] for _ in range(self.runs))
        out["fp32_s"] = round(t32, 2)
        text = self._text()
        ref_ids = self._stock_ids(text, n)
        for dtype in ("float32", "bfloat16", "int8"):
            other = self.engine
            if dtype != "float32":
                cfg = EngineConfig(model_dir=str(self.model_dir), max_new_tokens=4096,
                                   gpt_dtype=dtype)  # fmt: skip
                other = ChatTTSEngine(cfg, batcher=self.torch)
                other.load()
            t = t32 if dtype == "float32" else statistics.median(
                self.ours(n, engine=other)[1] for _ in range(self.runs))  # fmt: skip
            ids = self._ids(other, text, n)
            err, top1 = self._logit_error(other)
            out[dtype] = {
                "seconds": round(t, 2),
                "speedup_vs_fp32": round(t32 / t, 2),
                "token_agreement": round(float(np.mean(ref_ids == ids)), 4),
                "first_differing_step": int(np.argmax(np.any(ref_ids != ids, axis=1)))
                if np.any(ref_ids != ids) else n,
                "logit_max_abs_error": round(err, 6),
                "top1_agreement_teacher_forced": round(top1, 4),
            }  # fmt: skip
            if other is not self.engine:
                other.close()
        return out

    def _logit_error(self, other: Any) -> tuple[float, float]:
        """Max |logit difference| and top-1 agreement against stock, on 128 random inputs."""
        return self.torch.call(self._logit_error_here, other)

    def _logit_error_here(self, other: Any) -> tuple[float, float]:
        import torch

        torch.manual_seed(0)
        emb = torch.randn(1, 128, self.engine._chat.config.gpt.hidden_size) * 0.05

        def logits(chat: Any) -> torch.Tensor:
            gpt = chat.gpt
            with torch.inference_mode():
                hidden = gpt.gpt(inputs_embeds=emb.to(gpt.gpt.dtype)).last_hidden_state.float()
                return torch.stack([h(hidden) for h in chat.embed.head_code], -1)

        a, b = logits(self.stock), logits(other._chat)
        top1 = (a.argmax(-2) == b.argmax(-2)).float().mean().item()
        return float((a - b).abs().max()), top1

    def _text(self) -> str:
        from chattts_server.engine import SynthesisRequest

        return str(self.engine._prepare(SynthesisRequest(TEXT, spk_emb=self.spk)).segments[0].text)

    def _stock_ids(self, text: str, n: int) -> np.ndarray:
        import ChatTTS
        import torch

        params = ChatTTS.Chat.InferCodeParams(
            spk_emb=self.spk, manual_seed=7, min_new_token=n, max_new_token=n, show_tqdm=False
        )

        def run() -> Any:
            with torch.inference_mode():
                chat = self.stock
                return list(chat._infer_code([text], False, chat.device, True, params))[-1]

        return np.asarray(self.torch.call(run).ids[0].cpu())

    def _ids(self, engine: Any, text: str, n: int) -> np.ndarray:
        """Tokens our batcher samples for ``text`` (same prompt, sampling and seed as stock)."""
        import torch

        from chattts_server.engine import SynthesisRequest
        from chattts_server.engine.batching import Generation, Sampling

        p = engine._prepare(SynthesisRequest(TEXT, spk_emb=self.spk))

        def prompt() -> Any:
            with torch.inference_mode():
                return engine._prompt(text, p, None, None)

        emb = self.torch.call(prompt)  # sizeable torch ops stay on the torch thread
        s = Sampling(min_new_tokens=n, max_new_tokens=n, manual_seed=7)
        gen = engine.batcher.enqueue(Generation(emb, s, parts=engine.parts))
        for _ in gen.updates(None):
            pass
        return np.asarray(gen.ids.T)

    def decode_error(self, n: int, ttfa_tokens: int) -> dict[str, Any]:
        """Streamed (incremental) decode against a one-shot decode of the same tokens, for the
        engine's lookahead and the alternatives, each with its time to first audio.

        The error is the max |streamed − one-shot| as a share of the one-shot's RMS, on the
        generated model whose decoders have trained-like layer scales (1.0): with the
        initialisation's scales every lookahead looked exact (1.2e-7 at 8 tokens), which hid a
        click at every boundary that real weights show."""
        from dataclasses import replace

        from chattts_server.engine import ChatTTSEngine, SynthesisRequest

        req = SynthesisRequest(TEXT, spk_emb=self.spk, manual_seed=7, min_new_tokens=n,
                               max_new_tokens=n)  # fmt: skip
        one = np.concatenate([c.pcm for c in self.engine.synthesize(req)])
        rms = float(np.sqrt(np.mean(one.astype(np.float64) ** 2)))
        default = self.engine.config.stream_lookahead_tokens
        engines = {}
        for lookahead in sorted({8, 12, 16, 20, 24, default}):
            eng = self.engine
            if lookahead != default:
                cfg = replace(self.engine.config, stream_lookahead_tokens=lookahead)
                eng = ChatTTSEngine(cfg, batcher=self.torch)
                eng.load()
            engines[lookahead] = eng
        sweep = []
        firsts: dict[int, list[float]] = {k: [] for k in engines}
        stock_firsts = []
        for eng in engines.values():
            self.first_audio(ttfa_tokens, eng)  # warm
        for _ in range(self.runs):  # interleaved with stock, so drift hits every side
            stock_firsts.append(self.stock_first_audio(ttfa_tokens))
            for lookahead, eng in engines.items():
                firsts[lookahead].append(self.first_audio(ttfa_tokens, eng))
        stock_first = statistics.median(stock_firsts)
        for lookahead, eng in engines.items():
            inc = np.concatenate([c.pcm for c in eng.synthesize(replace(req, incremental=True))])
            assert inc.size == one.size
            err = float(np.max(np.abs(inc - one)))
            ttfa = statistics.median(firsts[lookahead])
            sweep.append({
                "lookahead_tokens": lookahead,
                "max_abs_error": float(f"{err:.3g}"),
                "error_share_of_rms": float(f"{err / rms:.3g}"),
                "error_db_re_rms": round(20 * float(np.log10(max(err, 1e-12) / rms)), 1),
                "ttfa_s": round(ttfa, 3),
                "ttfa_ratio_vs_stock": round(ttfa / stock_first, 3),
                "first_audio_after_steps": eng.config.stream_first_tokens + lookahead,
            })  # fmt: skip
            if eng is not self.engine:
                eng.close()
        ours = next(s for s in sweep if s["lookahead_tokens"] == default)
        old = next(s for s in sweep if s["lookahead_tokens"] == 8)
        return {
            "tokens": n,
            "layer_scales": self.layer_scale,
            "rms": round(rms, 5),
            "peak": round(float(np.max(np.abs(one))), 4),
            "lookahead_tokens": default,
            "max_abs_error": ours["max_abs_error"],
            "error_share_of_rms": ours["error_share_of_rms"],
            "ttfa_cost_vs_lookahead_8_ms": round(1000 * (ours["ttfa_s"] - old["ttfa_s"])),
            "ttfa_tokens": ttfa_tokens,
            "stock_ttfa_s": round(stock_first, 3),
            "sweep": sweep,
        }


def rss_growth(minutes: float, batcher: Any = None) -> dict[str, Any]:
    """RSS over one long incremental stream on the tiny model (the GPT's size does not matter
    for leaks in the streaming path; the tiny one makes 10 minutes of audio affordable)."""
    import psutil

    from chattts_server.engine import ChatTTSEngine, EngineConfig, SynthesisRequest
    from chattts_server.engine.testmodel import ensure_test_model

    tiny = ensure_test_model(CACHE / "tiny", "tiny")
    engine = ChatTTSEngine(EngineConfig(model_dir=str(tiny), max_new_tokens=2048), batcher=batcher)
    engine.load()
    per_segment = 1500  # tokens: 32 s each
    segments = max(1, round(minutes * 60 / (per_segment * TOKEN_SECONDS)))
    text = " ".join(f"Segment {i}." for i in range(segments))
    req = SynthesisRequest(text, seed=1, manual_seed=1, min_new_tokens=per_segment,
                           max_new_tokens=per_segment, incremental=True)  # fmt: skip
    proc = psutil.Process()
    samples, rss, warm = 0, [], None
    for chunk in engine.synthesize(req):
        samples += chunk.pcm.size
        rss.append(proc.memory_info().rss)
        if warm is None and chunk.segment >= 1:  # after one whole segment: buffers at full size
            warm = rss[-1]
    warm = warm or rss[0]
    return {"audio_minutes": round(samples / 24000 / 60, 2), "rss_start_mb": round(warm / 2**20),
            "rss_end_mb": round(rss[-1] / 2**20), "growth_mb": round((rss[-1] - warm) / 2**20, 1),
            "model": "tiny"}  # fmt: skip


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [p["audio_s"] for p in points]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(x, [p["stock_ttfa_s"] for p in points], "o-", label="stock stream")
    a.plot(x, [p["ours_ttfa_s"] for p in points], "o-", label="ours (incremental)")
    a.set(title="time to first audio", xlabel="audio length (s)", ylabel="seconds")
    b.plot(x, [p["stock_stream_total_s"] for p in points], "o-", label="stock stream")
    b.plot(x, [p["ours_stream_total_s"] for p in points], "o-", label="ours stream")
    b.plot(x, [p["ours_whole_s"] for p in points], "o--", label="ours non-streamed")
    b.set(title="total time", xlabel="audio length (s)", ylabel="seconds")
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("full-size ChatTTS architecture, random weights, CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter lengths, for a first look")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", type=Path, help="another checkpoint (smoke tests: tiny)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=FIGURES,
        help="re-measure these figures and keep the others from the last results file",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from chattts_server.engine.testmodel import ensure_test_model

    model = args.model or ensure_test_model(CACHE / "full", "full")
    lengths = (47, 141, 470) if args.quick else (94, 470, 1407)  # tokens: ~1, 3, 10 / 2, 10, 30 s
    name = "speed-quick" if args.quick else "speed"
    out = (CACHE if args.model else RESULTS) / f"{name}.json"
    RESULTS.mkdir(exist_ok=True)
    result: dict[str, Any] = json.loads(out.read_text()) if args.only and out.exists() else {}
    runs = result.get("runs_per_figure", args.runs)
    if not isinstance(runs, dict):  # re-measured figures may have run another number of times
        runs = dict.fromkeys(FIGURES, runs)
    runs.update(dict.fromkeys(args.only or FIGURES, args.runs))
    result.update(
        machine=f"{platform.machine()}, {psutil_cpus()} CPUs, torch threads "
        f"{__import__('torch').get_num_threads()}",
        model="generated full-size test model (official sizes, random weights, decoders with "
        "trained-like layer scales 1.0)",
        runs_per_figure=runs,
        stock="Chat.infer defaults, skip_refine_text=True, same weights, same process",
    )
    b = Bench(model, args.runs)
    figures: dict[str, Callable[[], Any]] = {
        "single_stream": lambda: b.single_stream(lengths[1]),
        "streaming": lambda: [b.streaming(n) for n in lengths],
        "decode_error": lambda: b.decode_error(lengths[1], lengths[-1]),
        "precision": lambda: b.precision(lengths[0]),
        "concurrency": lambda: b.concurrency(lengths[0]),
        "server_overhead": lambda: b.server_overhead(lengths[1]),
        "rss_growth": lambda: rss_growth(2 if args.quick else 10, b.torch),
    }
    load: dict[str, Any] = result.setdefault("load_average_1min", {})
    for figure in args.only or FIGURES:
        before = os.getloadavg()[0]
        result[figure] = figures[figure]()
        load[figure] = [round(before, 2), round(os.getloadavg()[0], 2)]  # before, after
        out.write_text(json.dumps(result, indent=2) + "\n")
    peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["peak_rss_mb"] = max(peak, result.get("peak_rss_mb", 0) if args.only else 0)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if all(f in result for f in FIGURES):
        plot(result["streaming"], out.with_suffix(".png"))
        out.with_suffix(".md").write_text(markdown(result))
        print(markdown(result))


def psutil_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def markdown(r: dict[str, Any]) -> str:
    s, st, c, o = r["single_stream"], r["streaming"], r["concurrency"], r["server_overhead"]
    de = r["decode_error"]
    longest = st[-1]
    rows = [
        ("single-stream RTF, fp32", f"{s['ours_rtf']} vs stock {s['stock_rtf']}",
         f"{s['speedup_vs_stock']}× faster", "≥ 2×"),
        ("single-stream RTF, int8 GPT", f"{s['ours_int8_rtf']} vs stock {s['stock_rtf']}",
         f"{s['int8_speedup_vs_stock']}× faster", "≥ 2× (stretch RTF ≤ 1)"),
        ("time to first audio (stream)", f"{longest['ours_ttfa_s']} s vs stock "
         f"{longest['stock_ttfa_s']} s", f"{longest['ttfa_ratio_vs_stock']}×", "≤ 0.2×"),
        (f"stream total / our non-streamed ({longest['audio_s']} s audio)",
         f"{longest['ours_stream_total_s']} / {longest['ours_whole_s']} s",
         f"{longest['stream_total_vs_our_whole']}× "
         f"(stock {longest['stock_stream_total_vs_our_whole']}×)",
         "≤ 1.05×"),
        ("4 concurrent: audio-s per wall-s vs 1", f"{c['audio_s_per_wall_s_at_4']} vs "
         f"{c['audio_s_per_wall_s_at_1']}", f"{c['gain_at_4']}×", "≥ 2.5×"),
        ("HTTP WAV vs direct engine", f"{o['http_wav_s']} vs {o['direct_s']} s",
         f"{o['http_vs_direct']}×", "≤ 1.02×"),
        ("RSS growth, long stream", f"{r['rss_growth']['audio_minutes']} min audio "
         f"({r['rss_growth']['model']})", f"{r['rss_growth']['growth_mb']} MB", "< 50 MB"),
        *[(f"{d} GPT vs stock fp32 ({r['precision']['tokens']} tokens)",
           f"{r['precision'][d]['seconds']} vs {r['precision']['fp32_s']} s (ours fp32)",
           f"{r['precision'][d]['speedup_vs_fp32']}×; tokens agree "
           f"{r['precision'][d]['token_agreement']}, teacher-forced top-1 "
           f"{r['precision'][d]['top1_agreement_teacher_forced']}, max logit error "
           f"{r['precision'][d]['logit_max_abs_error']}", "—")
          for d in ("float32", "bfloat16", "int8")],
        ("stream boundary error vs one-shot (trained-like decoders)",
         f"{de['lookahead_tokens']} tokens of lookahead, RMS {de['rms']}",
         f"{100 * de['error_share_of_rms']:.3f}% of RMS ({de['max_abs_error']:.2e})",
         "≤ 0.2% of RMS"),
    ]  # fmt: skip
    lines = ["| figure | measured | result | target |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c_} | {t} |" for a, b, c_, t in rows]
    lines += [
        "",
        f"Stream boundaries by lookahead ({de['tokens']} tokens, decoders' layer scales "
        f"{de['layer_scales']}; time to first audio of the {de['ttfa_tokens']}-token request, "
        f"stock {de['stock_ttfa_s']} s, measured in turn with each):",
        "",
        "| lookahead (tokens) | max error, share of RMS | dB re RMS | first audio after (steps) "
        "| time to first audio | vs stock |",
        "|---|---|---|---|---|---|",
    ]
    mark = {de["lookahead_tokens"]: " (default)"}
    lines += [
        f"| {w['lookahead_tokens']}{mark.get(w['lookahead_tokens'], '')} "
        f"| {100 * w['error_share_of_rms']:.3f}% | {w['error_db_re_rms']} "
        f"| {w['first_audio_after_steps']} | {w['ttfa_s']} s "
        f"| {w['ttfa_ratio_vs_stock']}× |"
        for w in de["sweep"]
    ]
    return f"# Speed ({r['machine']})\n\n{r['stock']}; peak RSS {r['peak_rss_mb']} MB.\n\n" + (
        "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
