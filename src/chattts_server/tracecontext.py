"""W3C Trace Context's ``traceparent`` header, as pure functions (no I/O, no dependencies):
the server reads it from callers and the Python SDK sends it (the Go client has its own copy
of these rules in ``clients/go/trace.go``).

``traceparent: 00-<trace-id>-<parent-id>-<flags>``: version ``00``; a trace id of 32 lowercase
hex digits, not all zero; a parent id (the span of whoever sends the header) of 16 lowercase
hex digits, not all zero; two hex digits of flags (bit 0: sampled). A version above ``00``
(never ``ff``) is read by the ``00`` rules from its first 55 characters, which must be followed
by ``-`` or nothing. Anything else — uppercase hex, a wrong length, several headers joined — is
invalid, and an invalid header starts a new trace (https://www.w3.org/TR/trace-context/).

Each hop makes its own span in the trace it was given (:func:`child_of`): the same trace id,
a new span id, the sampled flag kept (new traces are sampled, so that a tracing backend plugged
in later keeps them); the flags this version does not define are sent as zero.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

HEADER = "traceparent"
SAMPLED = 0x01
_V00 = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceParent:
    """One ``traceparent``: the trace, and the span of whoever sends it."""

    trace_id: str
    span_id: str  # the header's parent-id field
    flags: int = SAMPLED

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def header(self) -> str:
        """The header's value, version ``00`` (only the sampled flag is kept)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags & SAMPLED:02x}"


def parse(value: str | None) -> TraceParent | None:
    """The ``traceparent`` in ``value``, or ``None`` when it is missing or invalid."""
    if value is None:
        return None
    value = value.strip(" \t")
    if len(value) < 55 or (len(value) > 55 and value[55] != "-"):
        return None
    m = _V00.fullmatch(value[:55])
    if m is None:
        return None
    version, trace_id, span_id, flags = m.groups()
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def new_trace_id() -> str:
    while (tid := secrets.token_hex(16)) == _ZERO_TRACE:  # pragma: no cover (2**-128)
        pass
    return tid


def new_span_id() -> str:
    while (sid := secrets.token_hex(8)) == _ZERO_SPAN:  # pragma: no cover (2**-64)
        pass
    return sid


def child_of(parent: TraceParent | None) -> TraceParent:
    """A new span: in ``parent``'s trace (its sampled flag kept), or in a new sampled trace."""
    if parent is None:
        return TraceParent(new_trace_id(), new_span_id(), SAMPLED)
    return TraceParent(parent.trace_id, new_span_id(), parent.flags & SAMPLED)


def continue_from(header: str | None) -> tuple[TraceParent, TraceParent | None]:
    """A hop's span for an incoming header, and the caller's span it continues (``None``: the
    header was missing or invalid, and the span starts a new trace)."""
    parent = parse(header)
    return child_of(parent), parent
