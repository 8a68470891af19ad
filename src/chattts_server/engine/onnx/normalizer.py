"""ChatTTS's text ``Normalizer`` without numba: the same output for the same text.

A port of ``ChatTTS/norm.py`` (chattts 0.2.5) for the torch-free engine; only the standard
library and numpy are used. What it mirrors, step by step, in ``Normalizer.__call__``:

1. with ``do_text_normalization``: the language (``lang``, or ``_detect_language``: more CJK
   ideographs than ``\\b[A-Za-z]+\\b`` words → ``zh``); a registered normaliser for it runs on
   the text between ``[...]`` tags (``_split_tags`` / ``_combine_tags``, reproduced quirk for
   quirk, see below); for ``zh`` half-width punctuation becomes full-width;
2. when characters outside ``[\\u4e00-\\u9fffA-Za-z，。、,. ]`` remain (tags ``[\\w_]+`` aside),
   ChatTTS's punctuation simplification (``：；！（）…`` → ``，。``);
3. with ``do_homophone_replacement``: each UTF-16 code unit found in ``homophones_map.json`` is
   replaced once (``_fast_replace``; here one lookup table over all 65536 code units);
4. when step 2 found such characters: they are deleted from the text between tags.

ChatTTS behaviours kept as they are (the engine must speak what the torch engine speaks):

- ``_split_tags`` drops the text after an unclosed ``[`` (``"a [b"`` → ``"a "``), a ``[``
  directly before another ``[``, and a tag that follows a stray ``]`` at the end of the text
  (``"]x[a]"`` → ``"]x"``) — only when a normaliser is registered for the language.
- With a normaliser registered, an empty text raises ``IndexError`` (``texts[0]``).
- Characters outside the BMP are two code units for the homophone table, as in ChatTTS.

Checked against ``ChatTTS.norm.Normalizer`` in ``tests/engine/test_onnx_normalizer.py``: every
string literal of the test suite plus crafted texts (punctuation of both widths, mixed scripts,
control tokens, digits, emoji, symbols, unbalanced brackets, 4000 characters, empty), for
``lang`` None, ``zh`` and ``en``, with and without registered normalisers; ``register`` /
``unregister`` results alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from os import PathLike

import numpy as np

__all__ = ["Normalizer", "combine_tags", "split_tags"]

_CODING = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"

# ChatTTS norm.py's tables, verbatim
_CHARACTER_SIMPLIFIER = str.maketrans(
    {
        "：": "，",
        "；": "，",
        "！": "。",
        "（": "，",
        "）": "，",
        "【": "，",
        "】": "，",
        "『": "，",
        "』": "，",
        "「": "，",
        "」": "，",
        "《": "，",
        "》": "，",
        "－": "，",
        ":": ",",
        ";": ",",
        "!": ".",
        "(": ",",
        ")": ",",
        ">": ",",
        "<": ",",
        "-": ",",
    }
)
_HALFWIDTH_2_FULLWIDTH = str.maketrans(
    {
        "!": "！",
        '"': "“",
        "'": "‘",
        "#": "＃",
        "$": "＄",
        "%": "％",
        "&": "＆",
        "(": "（",
        ")": "）",
        ",": "，",
        "-": "－",
        "*": "＊",
        "+": "＋",
        ".": "。",
        "/": "／",
        ":": "：",
        ";": "；",
        "<": "＜",
        "=": "＝",
        ">": "＞",
        "?": "？",
        "@": "＠",
        "\\": "＼",
        "^": "＾",
        "`": "｀",
        "{": "｛",
        "|": "｜",
        "}": "｝",
        "~": "～",
    }
)
_REJECT = re.compile(r"[^\u4e00-\u9fffA-Za-z，。、,\. ]")
_TAG = re.compile(r"\[[\w_]+\]")
_CHINESE_CHAR = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH_WORD = re.compile(r"\b[A-Za-z]+\b")


def split_tags(text: str) -> tuple[list[str], list[str]]:
    """ChatTTS's ``_split_tags``: the text pieces and the ``[...]`` tags between them (same
    loop, same quirks: an unfinished tag is dropped, ``]`` outside a tag adds an empty tag)."""
    texts: list[str] = []
    tags: list[str] = []
    current_text = ""
    current_tag = ""
    for c in text:
        if c == "[":
            texts.append(current_text)
            current_text = ""
            current_tag = c
        elif current_tag != "":
            current_tag += c
        else:
            current_text += c
        if c == "]":
            tags.append(current_tag)
            current_tag = ""
    if current_text != "":
        texts.append(current_text)
    return texts, tags


def combine_tags(texts: list[str], tags: list[str]) -> str:
    """ChatTTS's ``_combine_tags``: each text piece followed by the next tag (tags left over
    once the pieces run out are dropped)."""
    out = [t + (tags[i] if i < len(tags) else "") for i, t in enumerate(texts)]
    return "".join(out)


def _rejoin(texts: list[str], tags: list[str]) -> str:
    # ChatTTS: ``_combine_tags(texts, tags) if len(tags) > 0 else texts[0]``
    return combine_tags(texts, tags) if tags else texts[0]


class Normalizer:
    """ChatTTS's ``Normalizer``: ``normalizer(text, do_text_normalization,
    do_homophone_replacement, lang)``, with ``register`` / ``unregister`` of per-language
    normalisers (``(str) -> str``). ``map_path``: ChatTTS's ``res/homophones_map.json`` (the
    ONNX export copies it next to the model)."""

    def __init__(self, map_path: str | PathLike[str], logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(__name__)
        self.normalizers: dict[str, Callable[[str], str]] = {}
        self._homophones = self._load_homophones_map(map_path)

    @staticmethod
    def _load_homophones_map(path: str | PathLike[str]) -> np.ndarray:
        """A table over all UTF-16 code units: ``table[u]`` is what ``u`` becomes.

        ChatTTS keeps (key, value) code points as uint32 pairs and compares each code unit with
        the keys, first match wins, writing the value back as uint16; keys above U+FFFF never
        match and values are truncated to 16 bits — the same here."""
        with open(path, encoding="utf-8") as f:
            mapping: dict[str, str] = json.load(f)
        table = np.arange(0x10000, dtype=np.uint16)
        seen: set[int] = set()
        for key, value in mapping.items():
            k, v = ord(key), ord(value)
            if k <= 0xFFFF and k not in seen:
                seen.add(k)
                table[k] = v & 0xFFFF
        return table

    def __call__(
        self,
        text: str,
        do_text_normalization: bool = True,
        do_homophone_replacement: bool = True,
        lang: str | None = None,
    ) -> str:
        if do_text_normalization:
            _lang = self._detect_language(text) if lang is None else lang
            if _lang in self.normalizers:
                texts, tags = split_tags(text)
                normalize = self.normalizers[_lang]
                texts = [normalize(t) for t in texts]
                text = _rejoin(texts, tags)
            if _lang == "zh":
                text = text.translate(_HALFWIDTH_2_FULLWIDTH)
        invalid = self._count_invalid_characters(text)
        if invalid:
            self.logger.warning(f"found invalid characters: {invalid}")
            text = text.translate(_CHARACTER_SIMPLIFIER)
        if do_homophone_replacement:
            units = np.frombuffer(text.encode(_CODING), dtype=np.uint16)
            replaced = self._homophones[units]
            changed = replaced != units
            if changed.any():
                text = replaced.tobytes().decode(_CODING)
                pairs = zip(units[changed].tolist(), replaced[changed].tolist(), strict=True)
                repl = ", ".join(f"{chr(a)}->{chr(b)}" for a, b in pairs)
                self.logger.info(f"replace homophones: {repl}")
        if invalid:
            texts, tags = split_tags(text)
            texts = [_REJECT.sub("", t) for t in texts]
            text = _rejoin(texts, tags)
        return text

    def register(self, name: str, normalizer: Callable[[str], str]) -> bool:
        """Add a normaliser for language ``name``; False (and a warning) when the name is
        taken, or the function fails on ChatTTS's probe string or returns a non-string."""
        if name in self.normalizers:
            self.logger.warning(f"name {name} has been registered")
            return False
        try:
            val = normalizer("test string 测试字符串")
            if not isinstance(val, str):
                self.logger.warning("normalizer must have caller type (str) -> str")
                return False
        except Exception as e:
            self.logger.warning(e)
            return False
        self.normalizers[name] = normalizer
        return True

    def unregister(self, name: str) -> None:
        self.normalizers.pop(name, None)

    @staticmethod
    def _count_invalid_characters(s: str) -> set[str]:
        return set(_REJECT.findall(_TAG.sub("", s)))

    @staticmethod
    def _detect_language(sentence: str) -> str:
        chinese = _CHINESE_CHAR.findall(sentence)
        english = _ENGLISH_WORD.findall(sentence)
        return "zh" if len(chinese) > len(english) else "en"
