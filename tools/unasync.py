"""Write the blocking client (``client/_sync.py``) from the asyncio one (``client/_async.py``).

The two shells hold the same calls, one awaited; the asyncio one is the source. Run after a
change to it::

    python tools/unasync.py          # rewrite _sync.py
    python tools/unasync.py --check  # exit 1 if _sync.py is not what _async.py makes

The rewrite is textual, as httpcore's ``unasync`` is: ``async def`` → ``def``, ``await x`` →
``x``, ``AsyncClient`` → ``Client``, ``aclose`` → ``close``, ``asyncio.sleep`` →
``time.sleep``, … The few sentences that only fit one client are replaced whole (``_PROSE``);
a word of asyncio left in the output is an error. ``tests/client/test_client_unasync.py``
checks that the committed ``_sync.py`` is the generated one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[1] / "src" / "chattts_server" / "client"
SOURCE = CLIENT / "_async.py"
TARGET = CLIENT / "_sync.py"

# sentences that differ between the clients, replaced whole: (in _async.py, in _sync.py)
_PROSE = [
    (
        "# The source of _sync.py: after a change here, run `python tools/unasync.py`.",
        "# Generated from _async.py by tools/unasync.py: edit that file, then run the script.",
    ),
    ("The asyncio client, and", "The blocking client, and"),
    (
        "An asyncio client of one chattts-server.",
        "A blocking client of one chattts-server, safe to share between threads.",
    ),
]

# token rewrites, in order: (pattern, replacement)
_CODE = [
    (r"(?m)^import asyncio\n", ""),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bAwaitable\[None\]", "None"),
    (r"\bAwaitable, ", ""),
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\baclosing\b", "closing"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\bAsyncGenerator\[([^][]+), None\]", r"Generator[\1, None, None]"),
    (r"\bAsync([A-Z]\w*)", r"\1"),  # AsyncClient, AsyncVoices, AsyncIterator, AsyncBaseTransport
    # a loop that only passes the items on is "yield from" (ruff's UP028)
    (r"(?m)^( *)for (\w+) in (.+):\n\1    yield \2\n", r"\1yield from \3\n"),
]

_LEFT = re.compile(r"\b(async|await|asyncio|Awaitable)\b")
_FROM_IMPORT = re.compile(r"(?m)^(from \S+ import )(?!\()(.+)$")


def _sorted_names(match: re.Match[str]) -> str:
    """A one-line ``from … import a, b`` with its names in isort's order (a rename can move
    one): constants, then classes, then the rest."""
    names = [n.strip() for n in match.group(2).split(",")]

    def key(name: str) -> tuple[int, str]:
        rank = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
        return rank, name

    return match.group(1) + ", ".join(sorted(names, key=key))


def generate(source: str) -> str:
    """The blocking client's source, from the asyncio client's."""
    text = source
    for old, new in _PROSE:
        if old not in text:
            raise ValueError(f"{SOURCE.name} no longer has the sentence {old!r}: update _PROSE")
        text = text.replace(old, new)
    for pattern, replacement in _CODE:
        text = re.sub(pattern, replacement, text)
    text = _FROM_IMPORT.sub(_sorted_names, text)
    left = sorted({m.group(0) for m in _LEFT.finditer(text)})
    if left:
        raise ValueError(f"asyncio left in the blocking client: {', '.join(left)}")
    return text


def main(argv: list[str]) -> int:
    expected = generate(SOURCE.read_text(encoding="utf-8"))
    if argv == ["--check"]:
        if TARGET.read_text(encoding="utf-8") != expected:
            print(f"{TARGET} is not generated from {SOURCE.name}: run python tools/unasync.py")
            return 1
        return 0
    if argv:
        print(__doc__)
        return 2
    TARGET.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
