"""Choosing the output format from the request's ``format`` field and ``Accept`` header.

Rules:

* An explicit ``format`` wins, but if an ``Accept`` header is present and gives it no
  positive quality, that is a 406 (:class:`NotAcceptableError`).
* Otherwise the ``Accept`` header decides: each format takes the q-value of the most
  specific media range matching it (``audio/mpeg`` beats ``audio/*`` beats ``*/*``;
  ``application/octet-stream`` counts like ``audio/*``) and the best positive one wins.
  Ties go to the more specific range, then the earlier entry, then ``default``, then the
  :class:`AudioFormat` order.
* ``audio/L16`` selects raw PCM and its ``rate`` parameter the output sample rate; an L16
  range with a rate we do not offer matches nothing. The body is still our little-endian
  PCM, not the big-endian samples RFC 2586 defines for L16.
* ``text/event-stream`` entries are ignored: whether to wrap audio in server-sent events is
  the HTTP layer's decision, made separately, so an ``Accept`` of only ``text/event-stream``
  behaves like no header. Any other header that accepts none of our formats (e.g. only
  ``application/json``, or every audio type with ``q=0``) is a 406.
* No header and no ``format``: ``default``.

A streamed request answers Server-Sent Events or chunked audio (:func:`wants_event_stream`):
SSE unless the client asked for audio — an explicit ``format``, or an ``Accept`` that names an
audio type (``audio/...``, ``application/octet-stream``) and does not prefer
``text/event-stream``. No ``Accept``, ``*/*`` or ``text/*`` means SSE (the original
description's callers send no ``Accept`` and read events).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotAcceptableError
from .formats import SUPPORTED_SAMPLE_RATES, AudioFormat

__all__ = ["Negotiated", "negotiate", "served_content_types", "wants_event_stream"]

_MEDIA_TYPES: dict[str, AudioFormat] = {
    "audio/wav": AudioFormat.WAV,
    "audio/x-wav": AudioFormat.WAV,
    "audio/wave": AudioFormat.WAV,
    "audio/mpeg": AudioFormat.MP3,
    "audio/mp3": AudioFormat.MP3,
    "audio/ogg": AudioFormat.OPUS,
    "audio/opus": AudioFormat.OPUS,
    "audio/flac": AudioFormat.FLAC,
    "audio/aac": AudioFormat.AAC,
    "audio/pcm": AudioFormat.PCM,
    "audio/l16": AudioFormat.PCM,
}
_WILDCARDS = {"*/*": 0, "audio/*": 1, "application/octet-stream": 1}  # value: specificity
_IGNORED = frozenset({"text/event-stream"})


@dataclass(frozen=True)
class Negotiated:
    """Outcome of :func:`negotiate`.

    Attributes:
        format: The format to serve.
        content_type: Its ``Content-Type``.
        sample_rate: Rate requested through ``audio/L16;rate=...``, else ``None`` (the
            caller's default applies).
    """

    format: AudioFormat
    content_type: str
    sample_rate: int | None = None


@dataclass(frozen=True)
class _Range:
    media_type: str
    q: float
    index: int
    rate: int | None

    def specificity(self, fmt: AudioFormat) -> int | None:
        """How specifically this range names ``fmt`` (2 exact, 1/0 wildcards), or None."""
        if self.media_type in _WILDCARDS:
            return _WILDCARDS[self.media_type]
        if self.rate is not None and self.rate not in SUPPORTED_SAMPLE_RATES:
            return None
        return 2 if _MEDIA_TYPES.get(self.media_type) is fmt else None


def served_content_types() -> tuple[str, ...]:
    """The content types we can serve, one per format."""
    return tuple(f.content_type for f in AudioFormat)


def negotiate(
    format: str | None,
    accept: str | None,
    *,
    default: AudioFormat | str = AudioFormat.WAV,
) -> Negotiated:
    """Pick the output format from the ``format`` field and the ``Accept`` header.

    See the module docstring for the rules.

    Raises:
        UnsupportedFormatError: ``format`` names no format (field ``format``).
        NotAcceptableError: the ``Accept`` header excludes ``format``, or accepts none of
            our formats.
    """
    explicit = None if format is None else AudioFormat.parse(format)
    default_fmt = AudioFormat.parse(default, field="default")
    ranges = _parse_accept(accept or "")
    if not ranges:
        chosen = explicit or default_fmt
        return Negotiated(chosen, chosen.content_type)
    candidates = [explicit] if explicit else list(AudioFormat)
    best: tuple[tuple[float, int, int, bool], AudioFormat, _Range] | None = None
    for fmt in candidates:
        match = _best_match(fmt, ranges)
        if match is None or match[0].q <= 0:
            continue
        rng, spec = match
        key = (rng.q, spec, -rng.index, fmt is default_fmt)
        if best is None or key > best[0]:
            best = (key, fmt, rng)
    if best is None:
        wanted = f"format {explicit.value!r}" if explicit else "any audio format we serve"
        raise NotAcceptableError(
            f"Accept header {accept!r} rules out {wanted}", served_content_types()
        )
    _, fmt, rng = best
    return Negotiated(fmt, fmt.content_type, rng.rate)


def wants_event_stream(accept: str | None, format: str | None) -> bool:
    """Whether a streamed request gets SSE (see the module docstring) rather than audio."""
    ranges = _parse_accept(accept or "", ignored=frozenset())
    sse = max((r.q for r in ranges if r.media_type == "text/event-stream"), default=0.0)
    audio = max(
        (r.q for r in ranges
         if r.media_type.startswith("audio/") or r.media_type == "application/octet-stream"),
        default=0.0,
    )  # fmt: skip
    if sse > 0 and sse >= audio:
        return True
    if format is not None or audio > 0:
        return False
    wild = max((r.q for r in ranges if r.media_type in ("*/*", "text/*")), default=0.0)
    return not ranges or wild > 0


def _best_match(fmt: AudioFormat, ranges: list[_Range]) -> tuple[_Range, int] | None:
    """The most specific range matching ``fmt`` (the first of equals) and its specificity."""
    found: tuple[_Range, int] | None = None
    for rng in ranges:
        spec = rng.specificity(fmt)
        if spec is not None and (found is None or spec > found[1]):
            found = (rng, spec)
    return found


def _parse_accept(header: str, ignored: frozenset[str] = _IGNORED) -> list[_Range]:
    """Parse an ``Accept`` header, dropping ``ignored`` types and malformed ranges."""
    ranges = []
    for index, entry in enumerate(header.split(",")):
        media_type, *params = (part.strip() for part in entry.split(";"))
        media_type = media_type.lower()
        if "/" not in media_type or media_type in ignored:
            continue
        q, rate = 1.0, None
        try:
            for param in params:
                name, _, value = param.partition("=")
                name, value = name.strip().lower(), value.strip().strip('"')
                if name == "q":
                    q = float(value)
                elif name == "rate" and media_type == "audio/l16":
                    rate = int(value)
        except ValueError:
            continue
        if not 0 <= q <= 1:
            continue
        ranges.append(_Range(media_type, q, index, rate))
    return ranges
