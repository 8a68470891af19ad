"""Fallback audio: prerecorded audio that ``synthesize`` returns (flagged ``fallback=True``)
when the server cannot answer. The shells fetch a URL source; everything else is here."""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ._parse import CONTENT_TYPES
from ._policy import server_fault
from .errors import ChatTTSError, CircuitOpenError
from .models import Audio
from .wav import read_info

log = logging.getLogger("chattts_server.client")

_SUFFIXES = {".wav": "wav", ".pcm": "pcm", ".mp3": "mp3", ".ogg": "opus", ".opus": "opus",
             ".flac": "flac", ".aac": "aac"}  # fmt: skip


class Fallback:
    """The fallback audio of one client: ``source`` is a file path, or an ``http(s)://`` URL;
    it is loaded once, the first time it is wanted."""

    def __init__(self, source: str | os.PathLike[str]) -> None:
        self.source = source
        self.audio: Audio | None = None  # once loaded

    @property
    def url(self) -> str | None:
        """The source if it is an ``http(s)://`` URL (fetched by the client), else ``None``."""
        src = self.source
        return src if isinstance(src, str) and urlsplit(src).scheme in ("http", "https") else None

    def wanted(self, exc: ChatTTSError) -> bool:
        """True when ``exc`` is answered with the fallback: the server's trouble (retries
        exhausted, circuit open, 5xx), never a 4xx input error."""
        return isinstance(exc, CircuitOpenError) or server_fault(exc)

    def read_file(self) -> None:
        """Load a file source.

        Raises:
            OSError: it cannot be read.
        """
        path = Path(self.source)
        self._set(path.read_bytes(), path.suffix, None)

    def fetched(self, data: bytes, content_type: str | None) -> None:
        """Load the body of the URL source, and its ``Content-Type``."""
        assert self.url is not None
        self._set(data, PurePosixPath(urlsplit(self.url).path).suffix, content_type)

    def _set(self, data: bytes, suffix: str, content_type: str | None) -> None:
        ctype = (content_type or "").split(";")[0].strip().lower()
        fmt = CONTENT_TYPES.get(ctype) or _SUFFIXES.get(suffix.lower()) or "wav"
        info = read_info(data) if fmt == "wav" else None
        self.audio = Audio(
            data, fmt, info.sample_rate if info else None, request_id=None, fallback=True
        )

    def served(self, exc: ChatTTSError) -> Audio:
        """The loaded audio, returned instead of raising ``exc``."""
        assert self.audio is not None
        log.warning("returning the fallback audio instead of failing: %s", exc)
        return self.audio

    def failed(self, exc: ChatTTSError, load_error: Exception) -> None:
        """Note on ``exc`` (raised after all) that the audio could not be loaded."""
        log.error("the fallback audio could not be loaded: %s", load_error)
        exc.add_note(f"the fallback audio could not be loaded: {load_error}")
