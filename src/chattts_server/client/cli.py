"""``chattts-server say`` and ``chattts-server voices``: a running server, through the SDK only.

chattts-server say TEXT [-o OUT] [--voice V] [--format F] [--stream] [--seed N] [--manual-seed N]
chattts-server voices list [--json]
chattts-server voices create NAME (--seed N | --spk-emb S | --ref-audio FILE --ref-text T)
                             [--description D] [--language zh|en] [--speed X] [--temperature X]
                             [--top-p X] [--top-k N] [--refine-text | --no-refine-text]
chattts-server voices delete NAME
chattts-server voices export [-o FILE]
chattts-server voices import FILE [--overwrite]

Every command also takes [--url URL]... [--timeout S] [--retries N] [--api-key KEY] [--ca FILE]
[--cert FILE --key FILE]; the URL and the API key default to $CHATTTS_SERVER_URL and
$CHATTTS_SERVER_API_KEY. Several servers — ``--url`` repeated, or URLs separated by commas, in
the option or the variable — are tried in that order: a call fails over from one that is down
to the next.

Wire them into a CLI with ``add_say_parser(subparsers)`` and ``add_voices_parser(subparsers)``;
each command's ``func`` takes the parsed arguments and returns the exit code (0 ok, 1 the call
failed, 2 bad usage).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from ._base import DEFAULT_URL
from ._policy import DEFAULT_TIMEOUT, Timeout
from ._sync import Client
from .errors import ChatTTSError, StreamInterruptedError
from .models import AudioFormat, Progress, StreamEvent, TTSParams, Voice, VoiceDefaults

__all__ = ["API_KEY_ENV", "URL_ENV", "add_say_parser", "add_voices_parser", "main", "say"]

URL_ENV = "CHATTTS_SERVER_URL"
API_KEY_ENV = "CHATTTS_SERVER_API_KEY"
FORMATS: tuple[AudioFormat, ...] = ("wav", "pcm", "mp3", "opus", "flac", "aac")
_SUFFIX_FORMATS: dict[str, AudioFormat] = {f".{f}": f for f in FORMATS} | {".ogg": "opus"}
_LONG_TEXT = 300  # characters: worth a note on stderr when not streaming


def _connection_options() -> argparse.ArgumentParser:
    """The options every command shares: where the server is and how to reach it."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="server URL; repeat it (or separate URLs with commas) for servers to fail over "
        "between, in order of preference (default: $" + URL_ENV + ", which may list several "
        f"the same way, else {DEFAULT_URL})",
    )
    g.add_argument("--timeout", type=float, metavar="S", help="deadline of the call, seconds")
    g.add_argument("--retries", type=int, default=2, metavar="N", help="default 2")
    g.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"sent as Authorization: Bearer KEY (default: ${API_KEY_ENV}; the variable keeps "
        "it out of the process list)",
    )
    g.add_argument("--ca", metavar="FILE", help="CA bundle (PEM) to verify the server with")
    g.add_argument("--cert", metavar="FILE", help="client certificate (PEM), for mTLS")
    g.add_argument("--key", metavar="FILE", help="private key (PEM) of --cert")
    return p


def add_say_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``say`` command to ``subparsers`` (from ``parser.add_subparsers()``)."""
    p = subparsers.add_parser(
        "say",
        parents=[_connection_options()],
        help="synthesize through a running server",
        description="Synthesize TEXT through a running chattts-server.",
    )
    p.add_argument("text", help="text to speak, or - to read stdin")
    p.add_argument(
        "-o", "--output",
        help="file to write, or - for stdout (the default when stdout is not a terminal)",
    )  # fmt: skip
    p.add_argument("--voice", help="alloy, echo, …, seed:N or a saved voice (voices list)")
    p.add_argument("--format", choices=FORMATS, help="default: from -o's suffix, else wav")
    p.add_argument(
        "--stream",
        action="store_true",
        help="write WAV as the audio arrives and show progress on stderr",
    )
    p.add_argument("--seed", type=int, help="voice seed")
    p.add_argument("--manual-seed", type=int, help="sampling seed: same input, same samples")
    p.set_defaults(func=say)
    return p


def add_voices_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``voices`` command (``list``, ``create``, ``delete``, ``export``, ``import``)
    to ``subparsers`` (from ``parser.add_subparsers()``)."""
    voices = subparsers.add_parser(
        "voices",
        help="manage the saved voices of a running server",
        description="List, create, delete, export and import the voices of a running server.",
    )
    sub = voices.add_subparsers(dest="voices_command", required=True, metavar="COMMAND")
    common = [_connection_options()]

    p = sub.add_parser("list", parents=common, help="built-in and saved voices")
    p.add_argument("--json", action="store_true", help="one JSON array, every field")
    p.set_defaults(func=_voices_list)

    p = sub.add_parser(
        "create",
        parents=common,
        help="save a voice",
        description="Save a voice made from a seed, a speaker string, or a reference clip.",
    )
    p.add_argument("name", help="letters, digits, - and _, 1–64 characters")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--seed", type=int, metavar="N", help="voice seed")
    source.add_argument("--spk-emb", metavar="S", help="a ChatTTS speaker string")
    source.add_argument("--ref-audio", metavar="FILE", help="reference clip (WAV, FLAC, Ogg)")
    p.add_argument("--ref-text", metavar="T", help="transcript of --ref-audio (required with it)")
    p.add_argument("--description", metavar="D")
    p.add_argument("--language", choices=("zh", "en"), help="language of its samples")
    defaults = p.add_argument_group("defaults", "applied when a synthesis does not set them")
    defaults.add_argument("--speed", type=float, metavar="X", help="0.5–2.0")
    defaults.add_argument("--temperature", type=float, metavar="X")
    defaults.add_argument("--top-p", type=float, metavar="X")
    defaults.add_argument("--top-k", type=int, metavar="N")
    defaults.add_argument("--refine-text", action=argparse.BooleanOptionalAction)
    p.set_defaults(func=_voices_create)

    p = sub.add_parser("delete", parents=common, help="delete a saved voice")
    p.add_argument("name")
    p.set_defaults(func=_voices_delete)

    p = sub.add_parser("export", parents=common, help="every saved voice as one JSON document")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    p.set_defaults(func=_voices_export)

    p = sub.add_parser("import", parents=common, help="import an export document")
    p.add_argument("file", help="the document, or - to read stdin")
    p.add_argument("--overwrite", action="store_true", help="replace voices that exist")
    p.set_defaults(func=_voices_import)
    return voices


# --- say -----------------------------------------------------------------------------------


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
    where = "stdout" if to_stdout else args.output

    def speak(client: Client) -> int:
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
        if to_stdout:
            sys.stdout.buffer.write(audio.data)
            sys.stdout.buffer.flush()
        else:
            audio.save(args.output)
        length = (
            f"{audio.duration:.2f}s" if audio.duration is not None else f"{len(audio.data)} bytes"
        )
        print(f"wrote {length} of {audio.format} to {where} (request {audio.request_id})",
              file=sys.stderr)  # fmt: skip
        return 0

    return _with_client(args, speak)


def _show_progress(event: StreamEvent) -> None:
    if isinstance(event, Progress):
        print(
            f"sentence {event.sentences_done}/{event.sentences_total}, "
            f"{event.audio_ms / 1000:.1f}s of audio",
            file=sys.stderr,
        )


# --- voices --------------------------------------------------------------------------------


def _voices_list(args: argparse.Namespace) -> int:
    def run(client: Client) -> int:
        voices = client.voices.list()
        if args.json:
            print(json.dumps([dataclasses.asdict(v) for v in voices], indent=2,
                             ensure_ascii=False))  # fmt: skip
            return 0
        rows = [("NAME", "KIND", "SEED", "LANG", "DESCRIPTION")] + [_row(v) for v in voices]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
            print("  ".join([*cells, row[4]]).rstrip())
        return 0

    return _with_client(args, run)


def _row(v: Voice) -> tuple[str, str, str, str, str]:
    seed = "" if v.seed is None else str(v.seed)
    return v.id, v.kind, seed, v.language or "", v.description or ""


def _voices_create(args: argparse.Namespace) -> int:
    if (args.ref_audio is None) != (args.ref_text is None):
        return _usage("--ref-audio and --ref-text go together")
    clip = None
    if args.ref_audio is not None:
        try:
            clip = Path(args.ref_audio).read_bytes()
        except OSError as exc:
            return _usage(f"--ref-audio: {exc}")
    picked = {
        "speed": args.speed, "temperature": args.temperature, "top_p": args.top_p,
        "top_k": args.top_k, "refine_text": args.refine_text,
    }  # fmt: skip
    defaults = cast(VoiceDefaults, {k: v for k, v in picked.items() if v is not None})

    def run(client: Client) -> int:
        voice = client.voices.create(
            args.name, seed=args.seed, spk_emb=args.spk_emb, ref_audio=clip,
            ref_text=args.ref_text, description=args.description, language=args.language,
            defaults=defaults or None,
        )  # fmt: skip
        seed = "" if voice.seed is None else f", seed {voice.seed}"
        print(f"created voice {voice.id} ({voice.kind}{seed}, model {voice.model_fingerprint})")
        return 0

    return _with_client(args, run)


def _voices_delete(args: argparse.Namespace) -> int:
    def run(client: Client) -> int:
        client.voices.delete(args.name)
        print(f"deleted voice {args.name}")
        return 0

    return _with_client(args, run)


def _voices_export(args: argparse.Namespace) -> int:
    def run(client: Client) -> int:
        document = client.voices.export()
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if args.output in (None, "-"):
            sys.stdout.write(text)
            return 0
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"exported {len(document['voices'])} voices to {args.output}")
        return 0

    return _with_client(args, run)


def _voices_import(args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        document = json.loads(raw)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _usage(f"{args.file}: {exc}")
    if not isinstance(document, dict):
        return _usage(f"{args.file}: not a voice export document (a JSON object)")

    def run(client: Client) -> int:
        result = client.voices.import_(document, overwrite=args.overwrite)
        print(f"imported {len(result.imported)}: {', '.join(result.imported) or '-'}")
        if result.skipped:
            print(f"skipped {len(result.skipped)} that exist (--overwrite replaces them): "
                  f"{', '.join(result.skipped)}")  # fmt: skip
        return 0

    return _with_client(args, run)


# --- shared ----------------------------------------------------------------------------------


def _with_client(args: argparse.Namespace, command: Callable[[Client], int]) -> int:
    """Run ``command`` with a client built from the connection options; an SDK error is
    reported on stderr, exit code 1."""
    urls = server_urls(args.url, os.environ.get(URL_ENV))
    timeout = DEFAULT_TIMEOUT if args.timeout is None else Timeout.of(args.timeout)
    try:
        client = Client(
            urls, timeout=timeout, retries=args.retries, breaker_threshold=None,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            ca=args.ca, cert=args.cert, key=args.key,
        )  # fmt: skip
    except ValueError as exc:
        return _usage(str(exc))
    except OSError as exc:  # ssl.SSLError included
        files = [f"--{n} {v}" for n in ("ca", "cert", "key") if (v := getattr(args, n))]
        return _usage(f"cannot load {', '.join(files)}: {exc}")
    with client:
        try:
            return command(client)
        except ChatTTSError as exc:
            return _failed(exc)


def server_urls(options: Sequence[str] | None, env: str | None) -> list[str]:
    """The servers to use, in order: the ``--url`` options, else the environment variable,
    else the default; each may hold several URLs separated by commas."""
    for source in (options or [], [env or ""]):
        urls = [url.strip() for value in source for url in value.split(",") if url.strip()]
        if urls:
            return urls
    return [DEFAULT_URL]


def _failed(exc: ChatTTSError) -> int:
    where = f" at {exc.endpoint}" if exc.endpoint else ""
    note = f" [request {exc.request_id}{where}]" if exc.request_id else ""
    if isinstance(exc, StreamInterruptedError):
        note += f" after {exc.bytes_received} bytes of audio"
    print(f"error: {exc}{note}", file=sys.stderr)
    return 1


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chattts_server.client.cli say|voices …``."""
    parser = argparse.ArgumentParser(prog="chattts-server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_say_parser(sub)
    add_voices_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
