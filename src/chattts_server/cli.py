"""The ``chattts-server`` command.

chattts-server make-test-model DIR --size tiny|full
chattts-server export-onnx MODEL_DIR OUT_DIR [--weights fp32|int8|int4]
chattts-server synth TEXT -o out.wav [--model-dir DIR | --engine onnx --onnx-dir DIR] [--seed N]
chattts-server serve | serve-ray | say | voices | certs
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from .settings import Settings


def _make_test_model(args: argparse.Namespace) -> int:
    from .engine.testmodel import TRAINED_LAYER_SCALE, make_test_model

    started = time.perf_counter()
    scale = (
        None
        if args.initial_layer_scales
        else (TRAINED_LAYER_SCALE if args.layer_scale is None else args.layer_scale)
    )
    root = make_test_model(args.dir, args.size, seed=args.seed, layer_scale=scale)
    print(
        f"wrote a {args.size} test model (random weights: noise, not speech) to {root} "
        f"in {time.perf_counter() - started:.1f}s; use it with --model-dir {root}"
    )
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from .engine import EngineError
    from .engine.onnx.export import check_export_dir, export

    started = time.perf_counter()
    try:
        check_export_dir(args.out_dir)
        out = export(args.model_dir, args.out_dir, weights=args.weights)
    except ImportError as exc:
        print(f"error: export-onnx needs the full install (torch, chattts, onnx): {exc}",
              file=sys.stderr)  # fmt: skip
        return 2
    except (EngineError, RuntimeError, ValueError) as exc:  # the tokenizer check, bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"exported {args.model_dir} ({args.weights} GPT weights) to {out} in "
        f"{time.perf_counter() - started:.1f}s; serve it with --engine onnx --onnx-dir {out}"
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .engine import EngineError, Pauses, SynthesisRequest, create_engine

    overrides = {
        "model_dir": args.model_dir,
        "device": args.device,
        "engine": args.engine,
        "onnx_dir": args.onnx_dir,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    text = sys.stdin.read() if args.text == "-" else args.text
    engine = create_engine(settings.engine_config())
    try:
        engine.load()
        request = SynthesisRequest(
            text=text,
            seed=args.seed,
            manual_seed=args.manual_seed,
            speed=args.speed,
            lang=args.lang,
            refine_text=args.refine_text,
            pauses=Pauses(args.comma_pause, args.period_pause),
            max_new_tokens=args.max_new_tokens,
        )
        synthesis = engine.synthesize(request)
        with wave.open(str(args.output), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(engine.info.sample_rate)
            if args.stream:  # write each chunk as it arrives
                for chunk in synthesis:
                    out.writeframes(_to_s16(chunk.pcm))
                    print(f"segment {chunk.segment + 1}/{chunk.segments}", file=sys.stderr)
            else:
                import numpy as np

                pcm = [c.pcm for c in synthesis]
                out.writeframes(_to_s16(np.concatenate(pcm) if pcm else np.zeros(0)))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = synthesis.stats
    note = " (a segment hit the token limit)" if stats.finish_reason == "length" else ""
    print(f"wrote {stats.samples / engine.info.sample_rate:.2f}s to {args.output}{note}")
    return 0


def _to_s16(pcm: object) -> bytes:
    import numpy as np

    from .audio import float_to_int16

    return bytes(float_to_int16(np.asarray(pcm, dtype=np.float32)).astype("<i2").tobytes())


def _certs(args: argparse.Namespace) -> int:
    from .certs import make_dev_certs

    paths = make_dev_certs(args.dir, args.name, args.days)
    for role, path in paths.items():
        print(f"{role:11} {path}")
    print(
        f"serve with --tls-cert {paths['server']} --tls-key {paths['server_key']} "
        f"--tls-client-ca {paths['ca']}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server.main import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chattts-server", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-test-model", help="write a random-weight ChatTTS checkpoint")
    p.add_argument("dir", type=Path)
    p.add_argument("--size", choices=("tiny", "full"), default="tiny")
    p.add_argument("--seed", type=int, default=0, help="weights seed (same seed, same weights)")
    p.add_argument(
        "--layer-scale",
        type=float,
        help="the decoders' ConvNeXt layer scales: trained-like (default 1.0), so that "
        "streaming boundaries behave as with real weights",
    )
    p.add_argument(
        "--initial-layer-scales",
        action="store_true",
        help="keep the initialisation's layer scales (1e-6 / 1/8): decoders that barely look at "
        "their neighbours, which hides streaming boundary errors",
    )
    p.set_defaults(func=_make_test_model)

    p = sub.add_parser(
        "export-onnx", help="export a ChatTTS model folder for the onnx engine (needs torch)"
    )
    p.add_argument("model_dir", type=Path, help="folder holding ChatTTS's asset/ layout")
    p.add_argument("out_dir", type=Path, help="where the export goes (made or replaced)")
    from .engine.onnx.export import WEIGHTS
    from .engine.pipeline import EngineKind

    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="fp32",
        help="GPT weights: fp32 (exact), or weight-only int8/int4 (MatMulNBits, blocks of 32, "
        "accuracy level 4)",
    )
    p.set_defaults(func=_export_onnx)

    p = sub.add_parser("synth", help="synthesize in-process (no server) into a WAV file")
    p.add_argument("text", help="text to speak, or - to read stdin")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--engine", choices=get_args(EngineKind))
    p.add_argument("--onnx-dir", type=Path, help="an export-onnx folder (--engine onnx)")
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, help="voice seed")
    p.add_argument("--manual-seed", type=int, help="sampling seed: same input, same samples")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--lang", choices=("zh", "en"))
    p.add_argument("--refine-text", action="store_true")
    p.add_argument("--comma-pause", type=int, default=0, metavar="MS")
    p.add_argument("--period-pause", type=int, default=0, metavar="MS")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--stream", action="store_true", help="write audio as each segment is ready")
    p.set_defaults(func=_synth)

    from .server.main import add_serve_arguments

    p = sub.add_parser("serve", help="run the HTTP server (every setting is a flag and an env var)")
    add_serve_arguments(p)
    p.set_defaults(func=_serve)

    from .server.rayserve import add_parser as add_serve_ray_parser

    add_serve_ray_parser(sub)

    from .client.cli import add_say_parser, add_voices_parser

    add_say_parser(sub)
    add_voices_parser(sub)

    p = sub.add_parser("certs", help="create a development CA, server and client certificate")
    p.add_argument("dir", type=Path)
    p.add_argument("--name", action="append", default=[], help="extra server name or IP")
    p.add_argument("--days", type=int, default=365)
    p.set_defaults(func=_certs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
