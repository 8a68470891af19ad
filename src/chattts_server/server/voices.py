"""The voice library: built-in OpenAI names, ``seed:N``, and saved voices (SQLite).

A saved voice keeps what makes it sound the same forever: the speaker string (seed and
speaker-string voices) or the encoded reference clip and its transcript, the fingerprint of the
weights it was made with, and its default parameters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine import ChatTTSEngine
from ..engine.voices import SEED_MAX
from .errors import BadRequestError, ConflictError, NotFoundError
from .protocol import VoiceCreate, VoiceDefaults, VoiceExport, VoiceInfo, VoicePatch
from .voicestore import StoredVoice, VoiceExistsError, VoiceMissingError, VoiceStore, valid_name

# OpenAI's voice names, each a fixed ChatTTS voice seed (stable across releases).
BUILTIN_VOICES: dict[str, int] = {
    "alloy": 1001, "ash": 1002, "ballad": 1003, "coral": 1004, "echo": 1005, "fable": 1006,
    "nova": 1007, "onyx": 1008, "sage": 1009, "shimmer": 1010, "verse": 1011, "marin": 1012,
    "cedar": 1013,
}  # fmt: skip
RESERVED_NAMES = frozenset({"export", "import"})  # routes under /v1/voices/


@dataclass(frozen=True)
class VoiceChoice:
    """A resolved ``voice`` field."""

    seed: int | None = None
    spk_emb: str | None = None
    ref_tokens: str | None = None
    ref_text: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None


def decode_b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"{field} is not valid base64", code="invalid_base64",
                              param=field) from exc  # fmt: skip


def check_name(name: str, param: str = "name") -> str:
    if not valid_name(name):
        raise BadRequestError(
            "voice names are letters, digits, - and _, 1–64 characters",
            code="invalid_voice_name",
            param=param,
        )
    return name


class VoiceLibrary:
    def __init__(self, store: VoiceStore, engine: ChatTTSEngine) -> None:
        self.store = store
        self.engine = engine

    def _fingerprint(self) -> str:
        model = self.engine.info.model
        return model.fingerprint if model else "unknown"

    @staticmethod
    def info(v: StoredVoice) -> VoiceInfo:
        return VoiceInfo(
            id=v.name,
            kind=v.kind,
            seed=v.seed,
            description=v.description,
            language=v.language,
            defaults=v.defaults,
            model_fingerprint=v.model_fingerprint,
            created_at=v.created_at,
        )

    async def list_all(self) -> list[VoiceInfo]:
        builtin = [
            VoiceInfo(id=name, kind="builtin", seed=seed, description="OpenAI voice name")
            for name, seed in BUILTIN_VOICES.items()
        ]
        saved = await asyncio.to_thread(self.store.list)
        return builtin + [self.info(v) for v in saved]

    async def get(self, name: str) -> StoredVoice:
        voice = await asyncio.to_thread(self.store.get, check_name(name))
        if voice is None:
            raise NotFoundError(f"voice {name!r} not found", code="voice_not_found", param="name")
        return voice

    async def create(self, body: VoiceCreate) -> StoredVoice:
        if body.name in BUILTIN_VOICES or body.name in RESERVED_NAMES:
            raise ConflictError(f"{body.name!r} is a built-in or reserved name",
                                code="voice_exists", param="name")  # fmt: skip
        sources = [n for n in ("seed", "spk_emb", "ref_audio") if getattr(body, n) is not None]
        if len(sources) != 1:
            raise BadRequestError(
                "give exactly one of seed, spk_emb or ref_audio",
                code="conflicting_voice" if sources else "missing_field",
                param=sources[1] if sources else "seed",
            )
        if body.ref_audio is None and body.ref_text is not None:
            raise BadRequestError("ref_text goes with ref_audio", param="ref_text")
        voice = StoredVoice(
            name=body.name,
            kind=sources[0],  # type: ignore[arg-type]
            model_fingerprint=self._fingerprint(),
            description=body.description,
            language=body.language,
            defaults=body.defaults.model_dump(exclude_none=True),
        )
        if body.seed is not None:
            voice.seed = body.seed
            voice.spk_emb = self.engine.speaker_for_seed(body.seed)
        elif body.spk_emb is not None:
            voice.spk_emb = self.engine.check_speaker(body.spk_emb)
        else:
            if not body.ref_text or not body.ref_text.strip():
                raise BadRequestError("ref_audio needs its transcript in ref_text",
                                      code="missing_field", param="ref_text")  # fmt: skip
            clip = decode_b64(body.ref_audio or "", "ref_audio")
            voice.ref_tokens = await asyncio.to_thread(self.engine.encode_reference, clip)
            voice.ref_text = body.ref_text.strip()
        try:
            return await asyncio.to_thread(self.store.create, voice)
        except VoiceExistsError as exc:
            raise ConflictError(f"voice {body.name!r} exists", code="voice_exists",
                                param="name") from exc  # fmt: skip

    async def update(self, name: str, patch: VoicePatch) -> StoredVoice:
        changes = patch.model_dump(exclude_unset=True)
        if "defaults" in changes:
            changes["defaults"] = (patch.defaults or VoiceDefaults()).model_dump(exclude_none=True)
        try:
            return await asyncio.to_thread(self.store.update, check_name(name), changes)
        except VoiceMissingError as exc:
            raise NotFoundError(f"voice {name!r} not found", code="voice_not_found",
                                param="name") from exc  # fmt: skip

    async def delete(self, name: str) -> None:
        try:
            await asyncio.to_thread(self.store.delete, check_name(name))
        except VoiceMissingError as exc:
            raise NotFoundError(f"voice {name!r} not found", code="voice_not_found",
                                param="name") from exc  # fmt: skip

    async def export(self) -> VoiceExport:
        voices = await asyncio.to_thread(self.store.list)
        return VoiceExport(voices=[v.to_json() for v in voices])

    async def import_(self, data: VoiceExport, overwrite: bool) -> tuple[list[str], list[str]]:
        voices = []
        for i, raw in enumerate(data.voices):
            voices.append(_parse_stored(raw, f"voices.{i}"))
        return await asyncio.to_thread(self.store.import_many, voices, overwrite=overwrite)

    async def resolve(self, voice: str, param: str = "voice") -> VoiceChoice:
        """A built-in name, ``seed:N`` or a saved voice; anything else is a 404."""
        if voice in BUILTIN_VOICES:
            return VoiceChoice(seed=BUILTIN_VOICES[voice])
        if voice.startswith("seed:"):
            raw = voice[5:]
            if not raw.isdigit() or int(raw) > SEED_MAX:
                raise BadRequestError(f"seed voices are seed:N with N in 0…{SEED_MAX}",
                                      param=param)  # fmt: skip
            return VoiceChoice(seed=int(raw))
        saved = await asyncio.to_thread(self.store.get, voice) if valid_name(voice) else None
        if saved is None:
            raise NotFoundError(f"voice {voice!r} not found", code="voice_not_found", param=param)
        warning = None
        if saved.model_fingerprint != self._fingerprint():
            warning = (
                f"voice {voice} was made with model {saved.model_fingerprint}; "
                f"this server runs {self._fingerprint()}"
            )
        return VoiceChoice(
            spk_emb=saved.spk_emb,
            ref_tokens=saved.ref_tokens,
            ref_text=saved.ref_text,
            defaults=saved.defaults,
            warning=warning,
        )


class _StoredModel(BaseModel):
    """The shape of one voice in an export file: checked before anything is written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    kind: Literal["seed", "spk_emb", "ref_audio"]
    model_fingerprint: str
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    spk_emb: str | None = None
    ref_tokens: str | None = None
    ref_text: str | None = None
    description: str | None = None
    language: Literal["zh", "en"] | None = None
    defaults: VoiceDefaults = Field(default_factory=VoiceDefaults)
    created_at: float = Field(0.0, ge=0)
    updated_at: float = Field(0.0, ge=0)


def _parse_stored(raw: dict[str, Any], where: str) -> StoredVoice:
    try:
        model = _StoredModel.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadRequestError(f"{where}.{loc}: {err['msg']}", param=f"{where}.{loc}") from exc
    check_name(model.name, f"{where}.name")
    if model.name in BUILTIN_VOICES or model.name in RESERVED_NAMES:
        raise BadRequestError(f"{where}.name is reserved", code="invalid_voice_name",
                              param=f"{where}.name")  # fmt: skip
    needs = ("ref_tokens", "ref_text") if model.kind == "ref_audio" else ("spk_emb",)
    for name in needs:
        if not getattr(model, name):
            raise BadRequestError(f"{where}.{name} is missing", code="missing_field",
                                  param=f"{where}.{name}")  # fmt: skip
    data = model.model_dump()
    data["defaults"] = model.defaults.model_dump(exclude_none=True)
    return StoredVoice(**data)
