"""Building requests, without I/O: every call described as a :class:`Request` (what to send,
how to read the answer, whether it may be repeated), its JSON body and its headers."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import httpx

from .. import __version__
from . import _parse as parse
from ._policy import Call
from .models import Audio, Health, ImportResult, TTSParams, Voice, VoiceChanges, VoiceDefaults

T = TypeVar("T")

USER_AGENT = f"chattts-server-client/{__version__}"
_PARAMS = frozenset(TTSParams.__annotations__)
_VOICE_CHANGES = frozenset(VoiceChanges.__annotations__)


@dataclass(frozen=True)
class Request(Generic[T]):
    """One call, described without I/O: what to send and how to read the answer; each
    client's ``_run`` (or ``stream``) sends it.

    Attributes:
        parse: Makes the result of the answer (a streamed answer: checks its head).
        idempotent: False for a call that changes something (see :class:`RetryPolicy`).
        guarded: Counted by the circuit breaker.
        retries: Retried at all.
        accept: Error statuses that are answers, not errors (``/readyz``'s 503).
        stream: The answer is an event stream, read as it arrives.
    """

    method: str
    path: str
    parse: Callable[[Call, httpx.Response], T]
    json: Any = None
    idempotent: bool = True
    guarded: bool = True
    retries: bool = True
    accept: tuple[int, ...] = ()
    stream: bool = False

    @property
    def name(self) -> str:
        """How logs and errors name the call: ``POST /v1/tts``."""
        name = f"{self.method} {self.path.partition('?')[0]}"
        return f"{name} (stream)" if self.stream else name

    def headers(self, call: Call, auth: Mapping[str, str]) -> dict[str, str]:
        """The headers of one attempt (the client's own are added by httpx)."""
        accept = {"Accept": "text/event-stream"} if self.stream else {}
        trace = {"traceparent": call.trace.header()}
        return {"X-Request-ID": call.request_id, **trace, **auth, **accept}


def bearer(api_key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``api_key``."""
    if api_key is None:
        return {}
    if (
        not api_key
        or api_key != api_key.strip()
        or not api_key.isascii()
        or not api_key.isprintable()
    ):
        raise ValueError("api_key must be printable ASCII, without surrounding spaces")
    return {"Authorization": f"Bearer {api_key}"}


# --- synthesis ----------------------------------------------------------------------------------


def tts_body(text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/tts`` JSON body for ``text`` and :class:`TTSParams`."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise TypeError(f"unknown synthesis parameter(s): {', '.join(unknown)}")
    body: dict[str, Any] = {"text": text}
    for key, value in params.items():
        if value is None:
            continue
        if key == "ref_audio":
            value = _b64_clip(value)
        elif key in ("pauses", "extensions"):
            value = dict(value)
        body[key] = value
    return body


def synthesize(text: str, params: Mapping[str, Any]) -> Request[Audio]:
    return Request("POST", "/v1/tts", parse.audio, tts_body(text, params))


def stream(text: str, params: Mapping[str, Any]) -> Request[None]:
    if params.get("format") is not None:
        raise ValueError("stream() yields PCM chunks; format is not accepted")
    body = tts_body(text, params)
    return Request("POST", "/v1/tts?stream=true", parse.event_stream, body, stream=True)


def health() -> Request[Health]:
    """One attempt, not counted by the breaker; a 503 is an answer (not ready)."""
    return Request("GET", "/readyz", parse.health, guarded=False, retries=False, accept=(503,))


# --- the voice library --------------------------------------------------------------------------


def voice_list() -> Request[list[Voice]]:
    return Request("GET", "/v1/voices", parse.voices)


def voice_get(name: str) -> Request[Voice]:
    return Request("GET", _voice_path(name), parse.voice)


def voice_create(
    name: str,
    *,
    seed: int | None,
    spk_emb: str | None,
    ref_audio: bytes | None,
    ref_text: str | None,
    description: str | None,
    language: str | None,
    defaults: VoiceDefaults | None,
) -> Request[Voice]:
    fields = {
        "seed": seed,
        "spk_emb": spk_emb,
        "ref_audio": None if ref_audio is None else _b64_clip(ref_audio),
        "ref_text": ref_text,
        "description": description,
        "language": language,
        "defaults": None if defaults is None else dict(defaults),
    }
    body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    return Request("POST", "/v1/voices", parse.voice, body, idempotent=False)


def voice_update(name: str, changes: Mapping[str, Any]) -> Request[Voice]:
    unknown = sorted(set(changes) - _VOICE_CHANGES)
    if unknown:
        raise TypeError(f"a voice's {', '.join(unknown)} cannot be changed")
    body = {k: dict(v) if k == "defaults" and v is not None else v for k, v in changes.items()}
    return Request("PATCH", _voice_path(name), parse.voice, body, idempotent=False)


def voice_delete(name: str) -> Request[None]:
    return Request("DELETE", _voice_path(name), parse.no_content, idempotent=False)


def voice_sample(name: str, format: str, text: str | None, lang: str | None) -> Request[Audio]:
    query = {"format": format, "text": text, "lang": lang}
    params = urlencode({k: v for k, v in query.items() if v is not None})
    return Request("GET", f"{_voice_path(name)}/sample?{params}", parse.audio)


def voice_export() -> Request[dict[str, Any]]:
    return Request("GET", "/v1/voices/export", parse.export_document)


def voice_import(document: Mapping[str, Any], overwrite: bool) -> Request[ImportResult]:
    if not isinstance(document, Mapping):
        raise TypeError("import_() takes an export document: a mapping, as export() returns")
    path = f"/v1/voices/import?overwrite={str(overwrite).lower()}"
    return Request("POST", path, parse.import_result, dict(document), idempotent=False)


def _b64_clip(value: Any) -> str:
    if not isinstance(value, bytes | bytearray):
        raise TypeError("ref_audio takes the clip's bytes")
    return base64.b64encode(value).decode("ascii")


def _voice_path(name: str) -> str:
    """``/v1/voices/{name}``, the name percent-encoded, dots included (``..`` must reach the
    server as a name, not become a step up the path)."""
    if not name:
        raise ValueError("a voice name cannot be empty")
    return "/v1/voices/" + quote(name, safe="").replace(".", "%2E")
