"""The SSE decoder: the format's rules, and the same events for any split of the bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chattts_server.client.sse import Event, SSEDecoder


def decode(*pieces: bytes) -> list[Event]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def test_named_events_multiline_data_and_defaults() -> None:
    stream = b'event: audio\ndata: {"a":\ndata: 1}\n\ndata:plain\n\n'
    assert decode(stream) == [Event("audio", '{"a":\n1}'), Event("message", "plain")]


def test_every_line_ending() -> None:
    expected = [Event("progress", "x\ny")]
    for eol in (b"\n", b"\r\n", b"\r"):
        assert decode(eol.join([b"event: progress", b"data: x", b"data: y", b"", b""])) == expected


def test_comments_keepalives_and_empty_events_are_skipped() -> None:
    stream = b": keep-alive\n\n:another\nevent: audio\n\nevent: done\ndata: 1\n\n"
    # "event: audio" with no data dispatches nothing, and its name does not leak into the next
    assert decode(stream) == [Event("done", "1")]


def test_field_parsing_rules() -> None:
    stream = (
        b"data:no-space\ndata:  two spaces\ndata\nid: 7\nretry: 1500\nretry: soon\n"
        b"unknown: field\n\nid: a\0b\ndata: next\n\n"
    )
    assert decode(stream) == [
        Event("message", "no-space\n two spaces\n", id="7", retry=1500),
        Event("message", "next", id="7", retry=1500),  # an id with NUL is ignored
    ]


def test_utf8_split_inside_a_character_and_a_leading_bom() -> None:
    raw = "\ufeffdata: 你好, wörld\n\n".encode()
    for i in range(len(raw) + 1):
        assert decode(raw[:i], raw[i:]) == [Event("message", "你好, wörld")]


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # not a blank line: \r\n was one ending
    assert decoder.feed(b"\r") == [Event("message", "a")]  # dispatched without waiting
    assert decoder.feed(b"\ndata: b\r\r") == [Event("message", "b")]


def test_pending_tells_an_unfinished_event_apart() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: ping\n\n")
    assert not decoder.pending
    decoder.feed(b"data: b\n")
    assert decoder.pending  # the stream would end inside an event: it is not dispatched


_line = st.one_of(
    st.builds(
        lambda v: f"data: {v}",
        st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",))),
    ),
    st.builds(lambda v: f"event: {v}", st.sampled_from(["audio", "progress", "done", "é"])),
    st.builds(
        lambda v: f":{v}",
        st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",))),
    ),
    st.builds(lambda v: f"id: {v}", st.text("0123456789abc", max_size=4)),
    st.just(""),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(_line, max_size=20))
    endings = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines),
                            max_size=len(lines)))  # fmt: skip
    text = "".join(line + end for line, end in zip(lines, endings, strict=True))
    bom = "\ufeff" if draw(st.booleans()) else ""
    data = (bom + text).encode()
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, sorted(cuts)


@given(streams())
def test_same_events_for_any_split(case: tuple[bytes, list[int]]) -> None:
    data, cuts = case
    bounds = [0, *cuts, len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode(*pieces) == decode(data)
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == decode(data)
