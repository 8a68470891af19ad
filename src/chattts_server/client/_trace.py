"""The caller's W3C trace, if it gives one: :func:`traceparent` makes it current (a context
variable, so it follows threads' and tasks' contexts as ``contextvars`` do); every call made
meanwhile is a span in that trace. Without one, each call starts a new trace. The rules are
:mod:`chattts_server.tracecontext`'s."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .. import tracecontext
from ..tracecontext import TraceParent

_caller: ContextVar[TraceParent | None] = ContextVar("chattts_client_trace", default=None)


@contextmanager
def traceparent(value: str | None) -> Iterator[TraceParent | None]:
    """Calls made inside ``with traceparent(value):`` continue the caller's trace ``value``
    (a W3C ``traceparent`` header, e.g. the one your own service received): each sends
    ``traceparent`` with the same trace id and a span id of its own. ``None`` or an invalid
    value: each call starts a new trace, as outside the block. Yields the parsed value."""
    parent = tracecontext.parse(value)
    token = _caller.set(parent)
    try:
        yield parent
    finally:
        _caller.reset(token)


def call_span() -> TraceParent:
    """A new span for one call: in the caller's trace, or in a new one."""
    return tracecontext.child_of(_caller.get())
