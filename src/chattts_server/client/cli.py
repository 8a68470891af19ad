"""``chattts-server say``: speak through a running server, using only the SDK.

chattts-server say TEXT [-o OUT] [--url URL] [--voice V] [--format F] [--stream] [--seed N]
                   [--manual-seed N] [--timeout S] [--retries N]

Wire it into a CLI with ``add_say_parser(subparsers)``; it sets ``func`` to :func:`say`, which
takes the parsed arguments and returns the exit code (0 ok, 1 the call failed, 2 bad usage).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._base import DEFAULT_TIMEOUT, DEFAULT_URL, Timeout
from ._sync import Client
from .errors import ChatTTSError, StreamInterruptedError
from .models import AudioFormat, Progress, StreamEvent, TTSParams

__all__ = ["URL_ENV", "add_say_parser", "main", "say"]

URL_ENV = "CHATTTS_SERVER_URL"
FORMATS: tuple[AudioFormat, ...] = ("wav", "pcm", "mp3", "opus", "flac", "aac")
_SUFFIX_FORMATS: dict[str, AudioFormat] = {f".{f}": f for f in FORMATS} | {".ogg": "opus"}
_LONG_TEXT = 300  # characters: worth a note on stderr when not streaming


def add_say_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``say`` command to ``subparsers`` (from ``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "say",
        help="synthesize through a running server",
        description="Synthesize TEXT through a running chattts-server.",
    )
    p.add_argument("text", help="text to speak, or - to read stdin")
    p.add_argument(
        "-o", "--output",
        help="file to write, or - for stdout (the default when stdout is not a terminal)",
    )  # fmt: skip
    p.add_argument("--url", help=f"server URL (default: ${URL_ENV}, else {DEFAULT_URL})")
    p.add_argument("--voice", help="alloy, echo, … or seed:N (see GET /v1/voices)")
    p.add_argument("--format", choices=FORMATS, help="default: from -o's suffix, else wav")
    p.add_argument(
        "--stream",
        action="store_true",
        help="write WAV as the audio arrives and show progress on stderr",
    )
    p.add_argument("--seed", type=int, help="voice seed")
    p.add_argument("--manual-seed", type=int, help="sampling seed: same input, same samples")
    p.add_argument("--timeout", type=float, metavar="S", help="deadline of the call, seconds")
    p.add_argument("--retries", type=int, default=2, metavar="N", help="default 2")
    p.set_defaults(func=say)
    return p


def say(args: argparse.Namespace) -> int:
    """Run ``say`` with parsed arguments; returns the exit code."""
    suffix = Path(args.output or "").suffix.lower()
    fmt: AudioFormat = args.format or _SUFFIX_FORMATS.get(suffix, "wav")
    if args.stream and fmt != "wav":
        return _usage(f"--stream writes wav, not {fmt}")
    to_stdout = args.output in (None, "-")
    if args.output is None and sys.stdout.isatty():
        return _usage("refusing to write audio to a terminal: give -o FILE (or -o - to insist)")
    text = sys.stdin.read() if args.text == "-" else args.text
    params: TTSParams = {"voice": args.voice, "seed": args.seed, "manual_seed": args.manual_seed}
    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    timeout = DEFAULT_TIMEOUT if args.timeout is None else Timeout.of(args.timeout)
    where = "stdout" if to_stdout else args.output
    with Client(url, timeout=timeout, retries=args.retries, breaker_threshold=None) as client:
        try:
            if args.stream:
                target = sys.stdout.buffer if to_stdout else args.output
                done = client.stream_to(target, text, on_event=_show_progress, **params)
                print(f"wrote {done.audio_duration_ms / 1000:.2f}s to {where} "
                      f"(request {done.request_id})", file=sys.stderr)  # fmt: skip
                return 0
            if len(text) > _LONG_TEXT:
                print(f"synthesizing {len(text)} characters…", file=sys.stderr)
            params["format"] = fmt
            audio = client.synthesize(text, **params)
        except ChatTTSError as exc:
            return _failed(exc)
    if to_stdout:
        sys.stdout.buffer.write(audio.data)
        sys.stdout.buffer.flush()
    else:
        audio.save(args.output)
    length = f"{audio.duration:.2f}s" if audio.duration is not None else f"{len(audio.data)} bytes"
    print(f"wrote {length} of {audio.format} to {where} (request {audio.request_id})",
          file=sys.stderr)  # fmt: skip
    return 0


def _show_progress(event: StreamEvent) -> None:
    if isinstance(event, Progress):
        print(
            f"sentence {event.sentences_done}/{event.sentences_total}, "
            f"{event.audio_ms / 1000:.1f}s of audio",
            file=sys.stderr,
        )


def _failed(exc: ChatTTSError) -> int:
    note = f" [request {exc.request_id}]" if exc.request_id else ""
    if isinstance(exc, StreamInterruptedError):
        note += f" after {exc.bytes_received} bytes of audio"
    print(f"error: {exc}{note}", file=sys.stderr)
    return 1


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chattts_server.client.cli say …``."""
    parser = argparse.ArgumentParser(prog="chattts-server")
    add_say_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
