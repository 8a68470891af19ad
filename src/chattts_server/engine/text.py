"""Text preparation: validation, control tokens, sentence splitting, speed and number words.

Pure functions, no torch. The rules (also in the README):

- Control tokens in square brackets pass through to ChatTTS: ``[uv_break]``, ``[v_break]``,
  ``[lbreak]``, ``[llbreak]``, ``[laugh]``. Any other ``[word]`` is rejected
  (``unknown_control_token``), so a typo never reaches the model as noise.
- Text is split into segments at sentence ends (``。！？；…`` and ``. ! ? ;`` followed by a space
  or the end) and newlines. A segment longer than ``max_segment_chars`` is split again at clause
  marks (``，、：,:``), then between words. Latin words and control tokens are never cut; a
  single word longer than the limit stays whole.
- With a comma pause, every clause is its own segment so that the silence can be inserted.
- Speed 0.5–2.0 maps onto ``[speed_0]``…``[speed_9]`` (see :func:`speed_to_level`).
- Text must hold something to speak: a Latin letter, a CJK ideograph (U+4E00–U+9FFF) or an
  ASCII digit (read as a number) outside control tokens; no control characters but tab and
  newlines. :data:`TEXT_PATTERN` is that rule as one regular expression (the OpenAPI document
  publishes it); :func:`validate_text` checks it with a code for each way to break it.
- Languages are BCP-47 tags, case-insensitive: Chinese (``zh``, ``zh-CN``, ``zh-Hans``,
  ``zh-TW``, ``cmn``, …) and English (``en``, ``en-US``, ``en-GB``, …) — see
  :func:`normalize_language`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .base import Language
from .errors import InvalidInputError
from .limits import SPEED

CONTROL_TOKENS: tuple[str, ...] = ("[uv_break]", "[v_break]", "[lbreak]", "[llbreak]", "[laugh]")
# the refine prompt's tokens as ChatTTS's tokenizer has them: [oral_0-9] [laugh_0-2] [break_0-7]
REFINE_PROMPT_PATTERN = r"^(?:\[(?:oral_[0-9]|laugh_[0-2]|break_[0-7])\]|\s)*$"
_TAG = re.compile(r"\[[^\[\]\s]{1,32}\]")
_SENTENCE_END = re.compile(r"(?<=[。！？；…])|(?<=[.!?;])(?=\s|$)|\n+")
_CLAUSE_END = re.compile(r"(?<=[，、：,:])")
_TOKEN = re.compile(r"\[[a-z_]+\]|[A-Za-z0-9'’\-]+|\s+|.", re.S)
_CJK = re.compile(r"[\u3400-\u9fff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPEAKABLE_CHARS = r"A-Za-z0-9\u4e00-\u9fff"
_SPEAKABLE = re.compile(f"[{_SPEAKABLE_CHARS}]")


def _text_pattern() -> str:
    """One regular expression (valid in Python and ECMA-262) for the text rule: units that
    are allowed control tokens or single characters (neither a control character nor the
    start of another ``[tag]``), at least one of them speakable."""
    allowed = "|".join(re.escape(t[1:-1]) for t in CONTROL_TOKENS)
    char = f"(?!{_TAG.pattern})[^{_CONTROL.pattern[1:-1]}]"
    unit = rf"(?:\[(?:{allowed})\]|{char})"
    return f"^{unit}*[{_SPEAKABLE_CHARS}]{unit}*$"


TEXT_PATTERN = _text_pattern()

# Languages: BCP-47 tags (``_`` tolerated for POSIX locales), primary subtag → what ChatTTS
# speaks. ``LANGUAGE_PATTERN`` publishes the same set for the OpenAPI document.
LANGUAGES: dict[str, Language] = {"zh": "zh", "cmn": "zh", "en": "en"}
LANGUAGE_PATTERN = r"^(?:[Zz][Hh]|[Cc][Mm][Nn]|[Ee][Nn])(?:[-_][A-Za-z0-9]{1,8})*$"
_LANGUAGE = re.compile(LANGUAGE_PATTERN)


def normalize_language(tag: object, field: str = "lang") -> Language:
    """``zh-CN``, ``cmn``, ``en-US``, … → ``zh`` or ``en``; anything else is
    ``unsupported_language``."""
    if not isinstance(tag, str):
        raise InvalidInputError(f"{field} must be a string", code="invalid_type", field=field)
    if not _LANGUAGE.match(tag):
        raise InvalidInputError(
            f"unsupported language {tag[:40]!r}: ChatTTS speaks Chinese (zh, zh-CN, zh-Hans, "
            "zh-TW, cmn, …) and English (en, en-US, en-GB, …)",
            code="unsupported_language",
            field=field,
        )
    return LANGUAGES[re.split("[-_]", tag, maxsplit=1)[0].lower()]


@dataclass(frozen=True)
class Segment:
    """A piece of text synthesized in one GPT pass, and the silence that follows it."""

    text: str
    pause_after_ms: int = 0


def validate_text(text: object, *, max_chars: int, field: str = "text") -> str:
    """Return ``text`` stripped, or raise :class:`InvalidInputError`."""
    if not isinstance(text, str):
        raise InvalidInputError("text must be a string", code="invalid_type", field=field)
    if len(text) > max_chars:
        raise InvalidInputError(
            f"text has {len(text)} characters; the limit is {max_chars}",
            code="text_too_long",
            field=field,
        )
    if _SURROGATE.search(text):
        raise InvalidInputError(
            "text holds lone UTF-16 surrogates (not valid Unicode text)",
            code="invalid_text",
            field=field,
        )
    if _CONTROL.search(text):
        raise InvalidInputError(
            "text holds control characters (only tab and newlines are allowed)",
            code="invalid_characters",
            field=field,
        )
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError("text is empty", code="empty_text", field=field)
    if not _without_tags(stripped).strip():
        raise InvalidInputError("text holds only control tokens", code="empty_text", field=field)
    for tag in _TAG.findall(stripped):
        if tag not in CONTROL_TOKENS:
            raise InvalidInputError(
                f"unknown control token {tag}; allowed: {', '.join(CONTROL_TOKENS)}",
                code="unknown_control_token",
                field=field,
            )
    if not speakable(stripped):
        raise InvalidInputError(
            "text has nothing ChatTTS can speak: it reads Chinese, English and digits",
            code="nothing_to_speak",
            field=field,
        )
    return stripped


def validate_refine_prompt(prompt: object) -> str:
    """A refine prompt is a run of ``[oral_N]``, ``[laugh_N]``, ``[break_N]`` tokens."""
    if not isinstance(prompt, str):
        raise InvalidInputError(
            "refine_prompt must be a string", code="invalid_type", field="refine_prompt"
        )
    if not re.match(REFINE_PROMPT_PATTERN, prompt):
        raise InvalidInputError(
            "refine_prompt may hold only [oral_0-9], [laugh_0-2] and [break_0-7] tokens",
            code="invalid_refine_prompt",
            field="refine_prompt",
        )
    return prompt


def speakable(text: str) -> bool:
    """Whether text has anything ChatTTS reads outside control tokens (Chinese characters,
    Latin letters, ASCII digits)."""
    return bool(_SPEAKABLE.search(_without_tags(text)))


def speed_to_level(speed: float) -> int:
    """Map a speed factor onto ChatTTS's ``[speed_N]`` levels.

    ``[speed_5]`` is ChatTTS's default pace (1.0). Below 1.0 each 0.1 is one level
    (0.5 → 0, 0.8 → 3); above, each 0.25 is one level (1.25 → 6, 1.5 → 7, 2.0 → 9).
    """
    if speed <= 1.0:
        return max(0, round((speed - SPEED[0]) * 10))
    return min(9, 5 + round((speed - 1.0) * 4))


def split_segments(
    text: str, *, max_chars: int, comma_pause_ms: int = 0, period_pause_ms: int = 0
) -> list[Segment]:
    """Split validated text into segments with the pause that follows each."""
    segments: list[Segment] = []
    sentences = [s.strip() for s in _SENTENCE_END.split(text)]
    sentences = [s for s in sentences if _without_tags(s).strip()]
    for sentence in sentences:
        pieces = _split_long(sentence, max_chars)
        if comma_pause_ms:
            pieces = [c for p in pieces for c in _split_at(_CLAUSE_END, p)]
        pieces = _merge_tag_only(pieces)
        for j, piece in enumerate(pieces):
            last = j == len(pieces) - 1
            segments.append(Segment(piece, period_pause_ms if last else comma_pause_ms))
    if segments:  # no silence after the very end
        segments[-1] = Segment(segments[-1].text, 0)
    return segments


def _without_tags(text: str) -> str:
    return _TAG.sub("", text)


def _merge_tag_only(pieces: list[str]) -> list[str]:
    """A piece holding only control tokens joins its neighbour: it has nothing to speak."""
    out: list[str] = []
    pending = ""
    for piece in pieces:
        if not _without_tags(piece).strip():
            if out:
                out[-1] = f"{out[-1]} {piece}"
            else:
                pending = f"{pending}{piece} "
        else:
            out.append(pending + piece)
            pending = ""
    return out


def _split_at(pattern: re.Pattern[str], text: str) -> list[str]:
    parts = [p.strip() for p in pattern.split(text)]
    return [p for p in parts if _without_tags(p).strip()]


def _split_long(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    out: list[str] = []
    for clause in _split_at(_CLAUSE_END, text):
        if len(clause) <= max_chars:
            _append_packed(out, clause, max_chars)
        else:
            for piece in _split_words(clause, max_chars):
                _append_packed(out, piece, max_chars)
    return out


def _append_packed(out: list[str], piece: str, max_chars: int) -> None:
    """Join short clauses back together up to the limit, so splitting stays minimal."""
    if out and len(out[-1]) + 1 + len(piece) <= max_chars:
        sep = " " if not (_CJK.search(out[-1][-1:]) or _CJK.search(piece[:1])) else ""
        out[-1] = f"{out[-1]}{sep}{piece}"
    else:
        out.append(piece)


def _split_words(text: str, max_chars: int) -> list[str]:
    """Cut between words: Latin words and tags are atomic, each CJK character is a word."""
    out: list[str] = []
    current = ""
    for token in _TOKEN.findall(text):
        if current and len(current) + len(token) > max_chars:
            out.append(current.strip())
            current = ""
        current += token
    if current.strip():
        out.append(current.strip())
    return [p for p in out if p]


# --- numbers: used when no WeTextProcessing / nemo normaliser is installed ------------------

# ASCII digits only (as TEXT_PATTERN); a run after a letter ("v2") is left to the normaliser
_NUMBER = re.compile(r"(?<![A-Za-z0-9])(-?)([0-9]{1,15})(?:\.([0-9]+))?(%?)")
_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ZH_DIGITS = "零一二三四五六七八九"


def _en_int(n: int) -> str:
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + (f" {_EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" {_en_int(rest)}" if rest else "")
    for scale, name in _EN_SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return f"{_en_int(head)} {name}" + (f" {_en_int(rest)}" if rest else "")
    raise AssertionError(n)


def _zh_under_10000(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, n = divmod(n, value)
        if digit:
            out += ("零" if zero and out else "") + _ZH_DIGITS[digit] + unit
            zero = False
        else:
            zero = True
    return out


def _zh_int(n: int) -> str:
    if n == 0:
        return "零"
    parts: list[str] = []
    for value, unit in ((10**12, "兆"), (10**8, "亿"), (10**4, "万"), (1, "")):
        head, n = divmod(n, value)
        if head:
            if parts and head < 1000:
                parts.append("零")
            parts.append(_zh_under_10000(head) + unit)
    text = "".join(parts)
    return text[1:] if text.startswith("一十") else text


def spell_numbers(text: str, lang: str) -> str:
    """Spell out integers, decimals, negatives and percentages in ``lang`` (zh or en)."""

    def repl(m: re.Match[str]) -> str:
        sign, whole, frac, percent = m.groups()
        if lang == "zh":
            words = _zh_int(int(whole))
            if frac:
                words += "点" + "".join(_ZH_DIGITS[int(d)] for d in frac)
            if percent:
                words = "百分之" + words
            return ("负" if sign else "") + words
        words = _en_int(int(whole))
        if frac:
            words += " point " + " ".join(_EN_ONES[int(d)] for d in frac)
        words = ("minus " if sign else "") + words + (" percent" if percent else "")
        return f" {words} "

    return re.sub(r" {2,}", " ", _NUMBER.sub(repl, text)).strip()


def detect_language(text: str) -> str:
    """``zh`` when CJK characters outnumber Latin words (ChatTTS's own rule), else ``en``."""
    return "zh" if len(_CJK.findall(text)) > len(re.findall(r"[A-Za-z]+", text)) else "en"
