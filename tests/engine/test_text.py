"""Text preparation rules, without the model."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chattts_server.engine import InvalidInputError
from chattts_server.engine.text import (
    LANGUAGE_PATTERN,
    REFINE_PROMPT_PATTERN,
    TEXT_PATTERN,
    detect_language,
    normalize_language,
    speed_to_level,
    spell_numbers,
    split_segments,
    validate_refine_prompt,
    validate_text,
)


def test_sentences_split_on_cjk_and_latin_punctuation() -> None:
    segs = split_segments("你好。今天天气很好！Hello there. How are you? Fine", max_chars=100)
    assert [s.text for s in segs] == [
        "你好。",
        "今天天气很好！",
        "Hello there.",
        "How are you?",
        "Fine",
    ]


def test_decimal_point_is_not_a_sentence_end() -> None:
    assert [s.text for s in split_segments("It costs 3.5 dollars.", max_chars=100)] == [
        "It costs 3.5 dollars."
    ]


def test_long_sentence_splits_at_clauses_then_words() -> None:
    text = "alpha beta gamma, delta epsilon zeta, eta theta iota kappa lambda mu nu xi omicron"
    segs = [s.text for s in split_segments(text, max_chars=20)]
    assert all(len(s) <= 20 for s in segs)
    assert " ".join(segs).replace(",", "").split() == text.replace(",", "").split()


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(
        st.one_of(
            st.text(alphabet="abcdefghij", min_size=1, max_size=12),
            st.sampled_from(["[uv_break]", "[laugh]", "你好", "，", ",", "。", "."]),
        ),
        min_size=1,
        max_size=60,
    ),
    max_chars=st.integers(8, 40),
)
def test_splitting_never_cuts_a_word_or_loses_text(words: list[str], max_chars: int) -> None:
    text = " ".join(words)
    segs = [s.text for s in split_segments(text, max_chars=max_chars)]
    word = re.compile(r"[a-j]+|[^\sa-j\[\]]")  # a Latin word, or one other character

    def words_of(x: str) -> list[str]:
        return word.findall(re.sub(r"\[\w+\]", " ", x))

    assert words_of(" ".join(segs)) == words_of(text)
    for seg in segs:
        if len(re.sub(r"\s*\[\w+\]\s*", "", seg)) > max_chars:
            assert len(words_of(seg)) == 1  # only a single over-long word exceeds the limit


def test_comma_pause_makes_clauses_and_no_pause_at_the_end() -> None:
    segs = split_segments("a, b. c", max_chars=100, comma_pause_ms=100, period_pause_ms=300)
    assert [(s.text, s.pause_after_ms) for s in segs] == [("a,", 100), ("b.", 300), ("c", 0)]


@pytest.mark.parametrize(
    ("speed", "level"), [(0.5, 0), (0.8, 3), (1.0, 5), (1.25, 6), (1.5, 7), (2.0, 9)]
)
def test_speed_mapping(speed: float, level: int) -> None:
    assert speed_to_level(speed) == level


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_text"),
        ("   \n\t", "empty_text"),
        ("[uv_break]", "empty_text"),
        ("x" * 5000, "text_too_long"),
        ("hello [foo] world", "unknown_control_token"),
        (42, "invalid_type"),
    ],
)
def test_bad_text(text: object, code: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        validate_text(text, max_chars=4000)
    assert exc.value.code == code
    assert exc.value.field == "text"


def test_control_tokens_pass() -> None:
    assert validate_text(" a [uv_break] b [laugh] [lbreak] ", max_chars=100) == (
        "a [uv_break] b [laugh] [lbreak]"
    )


def test_refine_prompt() -> None:
    assert validate_refine_prompt("[oral_2][laugh_0][break_6]")
    with pytest.raises(InvalidInputError) as exc:
        validate_refine_prompt("say it nicely")
    assert exc.value.field == "refine_prompt"


@pytest.mark.parametrize(
    ("text", "lang", "spoken"),
    [
        ("I have 42 cats", "en", "I have forty two cats"),
        ("pi is 3.14", "en", "pi is three point one four"),
        ("-7 degrees, 50% off", "en", "minus seven degrees, fifty percent off"),
        ("1200000", "en", "one million two hundred thousand"),
        ("我有42只猫", "zh", "我有四十二只猫"),
        ("共10086元", "zh", "共一万零八十六元"),
        ("增长3.5%", "zh", "增长百分之三点五"),
        ("110", "zh", "一百一十"),
    ],
)
def test_spell_numbers(text: str, lang: str, spoken: str) -> None:
    assert spell_numbers(text, lang) == spoken


def test_detect_language() -> None:
    assert detect_language("你好世界 hello") == "zh"
    assert detect_language("hello world 你") == "en"


# --- the published patterns accept exactly what the checks accept ----------------------------

_PIECES = st.sampled_from(
    ["a", "Z", "7", "你", "好", " ", "\t", "\n", "\x01", "\x7f", "\x85", "[", "]", "[laugh]",
     "[uv_break]", "[foo]", "[a b]", "[x]]", "[[v_break]", "Ω", "ǎ", "😀", ".", "，", "_", "-"]
)  # fmt: skip
texts = st.lists(_PIECES | st.text(max_size=3), max_size=12).map("".join)


def _accepted(check: object, *args: object) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except InvalidInputError:
        return False
    return True


@settings(max_examples=3000, deadline=None)
@given(texts)
def test_text_pattern_equals_the_text_rule(text: str) -> None:
    assert (re.match(TEXT_PATTERN, text) is not None) == _accepted(
        lambda t: validate_text(t, max_chars=10_000), text
    ), repr(text)


_TAGS = st.lists(
    st.sampled_from(["zh", "ZH", "cmn", "en", "En", "ja", "fr", "x", "", "-", "_", "CN", "Hans",
                     "us", "toolongsubtag", "-zh", "e", "n", "1"]),
    max_size=4,
).map("".join)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(_TAGS | st.text(max_size=8))
def test_language_pattern_equals_the_language_rule(tag: str) -> None:
    assert (re.match(LANGUAGE_PATTERN, tag) is not None) == _accepted(normalize_language, tag)


@pytest.mark.parametrize(
    ("tag", "lang"),
    [("zh", "zh"), ("zh-CN", "zh"), ("zh-Hans-CN", "zh"), ("ZH_tw", "zh"), ("cmn", "zh"),
     ("en", "en"), ("en-US", "en"), ("EN-gb", "en")],
)  # fmt: skip
def test_bcp47_tags_normalize(tag: str, lang: str) -> None:
    assert normalize_language(tag) == lang


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["[oral_3]", "[laugh_2]", "[laugh_5]", "[break_7]", "[break_8]",
                                 " ", "x", "[oral_]", "\n"]), max_size=5).map("".join))  # fmt: skip
def test_refine_prompt_pattern_equals_its_rule(prompt: str) -> None:
    assert (re.match(REFINE_PROMPT_PATTERN, prompt) is not None) == _accepted(
        validate_refine_prompt, prompt
    )
