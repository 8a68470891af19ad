"""An incremental Server-Sent Events decoder (the WHATWG event-stream format), free of I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Event", "SSEDecoder"]

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Event:
    """One dispatched event.

    Attributes:
        event: The ``event:`` name, ``"message"`` when none was given.
        data: The ``data:`` lines joined with ``\\n``.
        id: The last event id seen on the stream so far, if any.
        retry: The reconnection time (ms) from the latest ``retry:`` field, if any.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes as they arrive, in pieces of any size; get the events they complete.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``; comment lines (``:`` first, such as
    keep-alives) are skipped; a UTF-8 character or a ``\\r\\n`` split across pieces is handled.
    An event is dispatched at the blank line that ends it; an unfinished event at the end of
    the stream is not an event, and :attr:`pending` tells whether one was left.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no line ending
        self._after_cr = False  # the last line ended in \r at the end of a piece
        self._started = False  # the optional BOM has been dealt with
        self._name = ""
        self._data: list[str] = []
        self._has_fields = False
        self._last_id: str | None = None
        self._retry: int | None = None

    @property
    def pending(self) -> bool:
        """True while bytes of an unfinished event are buffered."""
        return bool(self._buf) or self._has_fields

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume ``chunk`` and return the events it completed, in order."""
        if self._after_cr and chunk:  # a \r ended the last piece: a \n now belongs to it
            chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
            self._after_cr = False
        buf = self._buf
        buf += chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                return []
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
            self._started = True
        events: list[Event] = []
        pos = 0
        while m := _EOL.search(buf, max(pos, self._scanned)):
            event = self._line(buf[pos : m.start()].decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
            pos = m.end()
            self._after_cr = pos == len(buf) and m.group() == b"\r"
        del buf[:pos]
        self._scanned = len(buf)
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        self._has_fields = True
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        data, name = self._data, self._name
        self._data, self._name, self._has_fields = [], "", False
        if not data:
            return None
        return Event(name or "message", "\n".join(data), self._last_id, self._retry)
