"""W3C ``traceparent`` rules (``chattts_server.tracecontext``): what is read, what is refused
(a new trace then), and how each hop makes its span."""

from __future__ import annotations

import re

import pytest

from chattts_server import tracecontext
from chattts_server.tracecontext import TraceParent, child_of, continue_from, parse

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"
HEADER = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]")


def test_the_specs_example_is_read() -> None:
    tp = parse(VALID)
    assert tp == TraceParent(TRACE, SPAN, 1)
    assert tp.sampled and tp.header() == VALID


def test_not_sampled_and_surrounding_blanks() -> None:
    tp = parse(f" \t00-{TRACE}-{SPAN}-00 ")
    assert tp is not None and not tp.sampled and tp.header() == f"00-{TRACE}-{SPAN}-00"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}-1",  # short flags
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 is exactly 55 characters
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE}-{SPAN}-0G",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"0-{TRACE}-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01,00-{TRACE}-{SPAN}-01",  # two headers joined
        f"01-{TRACE}-{SPAN}-01,01-{TRACE}-{SPAN}-01",
        f"01-{TRACE}-{SPAN}-01x",  # a later version: 55 characters, then "-" or nothing
    ],
)
def test_invalid_values_are_refused(value: str | None) -> None:
    assert parse(value) is None


def test_a_later_version_is_read_by_the_00_rules() -> None:
    assert parse(f"01-{TRACE}-{SPAN}-01") == TraceParent(TRACE, SPAN, 1)
    assert parse(f"cc-{TRACE}-{SPAN}-01-what-the-future-adds") == TraceParent(TRACE, SPAN, 1)


def test_undefined_flags_are_read_and_sent_as_zero() -> None:
    tp = parse(f"00-{TRACE}-{SPAN}-ff")
    assert tp is not None and tp.flags == 0xFF and tp.sampled
    assert tp.header().endswith("-01")
    assert child_of(tp).header().endswith("-01")


def test_a_child_keeps_the_trace_and_its_sampled_flag_with_a_new_span() -> None:
    parent = TraceParent(TRACE, SPAN, 0)
    kids = {child_of(parent) for _ in range(50)}
    assert {k.trace_id for k in kids} == {TRACE}
    assert len({k.span_id for k in kids}) == 50 and SPAN not in {k.span_id for k in kids}
    assert all(not k.sampled and HEADER.fullmatch(k.header()) for k in kids)


def test_without_a_parent_each_span_starts_a_new_sampled_trace() -> None:
    spans = [child_of(None) for _ in range(50)]
    assert len({s.trace_id for s in spans}) == 50
    assert all(s.sampled and HEADER.fullmatch(s.header()) for s in spans)
    assert all(parse(s.header()) == s for s in spans)


def test_continue_from_says_what_it_continued() -> None:
    span, parent = continue_from(VALID)
    assert parent == TraceParent(TRACE, SPAN, 1) and span.trace_id == TRACE
    span, parent = continue_from(f"00-{'0' * 32}-{SPAN}-01")
    assert parent is None and span.trace_id != "0" * 32 and span.sampled


def test_ids_are_lowercase_hex_of_the_right_length() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", tracecontext.new_trace_id())
    assert re.fullmatch(r"[0-9a-f]{16}", tracecontext.new_span_id())
