"""The voice library: built-in OpenAI names, ``seed:N``, and saved voices (a :class:`VoiceStore`:
SQLite, or PostgreSQL shared by several servers).

A saved voice keeps what makes it sound the same forever: the speaker string (seed and
speaker-string voices) or the encoded reference clip and its transcript, the fingerprint of the
weights it was made with, and its default parameters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine, limits
from ..engine.text import normalize_language, validate_text
from ..engine.voices import check_one_source
from .errors import BadRequestError, ConflictError, NotFoundError
from .protocol import (
    BUILTIN_VOICES,
    RECORD_FIELDS,
    RESERVED_NAMES,
    VoiceCreate,
    VoiceDefaults,
    VoiceExport,
    VoiceInfo,
    VoicePatch,
    VoiceRecord,
    decode_b64,
    valid_seed_voice,
    valid_voice_name,
)
from .voicestore import StoredVoice, VoiceExistsError, VoiceMissingError, VoiceStore


@dataclass(frozen=True)
class VoiceChoice:
    """A resolved ``voice`` field."""

    seed: int | None = None
    spk_emb: str | None = None
    ref_tokens: str | None = None
    ref_text: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None


def check_name(name: str, param: str = "name") -> str:
    if not valid_voice_name(name):
        raise BadRequestError(
            "voice names are letters, digits, - and _, 1–64 characters",
            code="invalid_voice_name",
            param=param,
        )
    return name


class VoiceLibrary:
    def __init__(self, store: VoiceStore, engine: Engine) -> None:
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
        options = ("seed", "spk_emb", "ref_audio")
        sources = [n for n in options if getattr(body, n) is not None]
        check_one_source(sources, required=options)
        if body.ref_audio is None and body.ref_text is not None:
            raise BadRequestError("ref_text goes with ref_audio", param="ref_text")
        voice = StoredVoice(
            name=body.name,
            kind=sources[0],  # type: ignore[arg-type]
            model_fingerprint=self._fingerprint(),
            description=body.description,
            language=_language(body.language),
            defaults=body.defaults.model_dump(exclude_none=True),
        )
        if body.seed is not None:
            voice.seed = body.seed
            # ~45 ms (ChatTTS's LZMA preset): off the event loop
            voice.spk_emb = await asyncio.to_thread(self.engine.speaker_for_seed, body.seed)
        elif body.spk_emb is not None:
            voice.spk_emb = self.engine.check_speaker(body.spk_emb)
        else:
            if body.ref_text is None:
                raise BadRequestError("ref_audio needs its transcript in ref_text",
                                      code="missing_field", param="ref_text")  # fmt: skip
            ref_text = validate_text(
                body.ref_text, max_chars=self.engine.info.max_ref_text_chars, field="ref_text"
            )
            clip = decode_b64(body.ref_audio or "", "ref_audio")
            voice.ref_tokens = await asyncio.to_thread(self.engine.encode_reference, clip)
            voice.ref_text = ref_text
        try:
            return await asyncio.to_thread(self.store.create, voice)
        except VoiceExistsError as exc:
            raise ConflictError(f"voice {body.name!r} exists", code="voice_exists",
                                param="name") from exc  # fmt: skip

    async def update(self, name: str, patch: VoicePatch) -> StoredVoice:
        changes = patch.model_dump(exclude_unset=True)
        if changes.get("language") is not None:
            changes["language"] = _language(changes["language"])
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
        """All or nothing: every record is checked (for this model) before one is written."""
        voices = [self._parse_record(raw, f"voices.{i}") for i, raw in enumerate(data.voices)]
        return await asyncio.to_thread(self.store.import_many, voices, overwrite=overwrite)

    def _parse_record(self, raw: VoiceRecord, where: str) -> StoredVoice:
        """What the schema says of a record (the fields each kind carries), and what only the
        engine can check: the speaker string or the encoded clip fits this model."""
        if raw.name in BUILTIN_VOICES or raw.name in RESERVED_NAMES:
            raise BadRequestError(f"{where}.name: {raw.name!r} is a built-in or reserved name",
                                  code="invalid_voice_name", param=f"{where}.name")  # fmt: skip
        for name, wanted in RECORD_FIELDS[raw.kind].items():
            if (getattr(raw, name) is not None) != wanted:
                raise BadRequestError(
                    f"{where}.{name} "
                    + ("is missing" if wanted else f"is not for a {raw.kind} voice"),
                    code="missing_field" if wanted else "invalid_value",
                    param=f"{where}.{name}",
                )
        if raw.spk_emb is not None:
            self.engine.check_speaker(raw.spk_emb, f"{where}.spk_emb")
        if raw.ref_tokens is not None:
            self.engine.check_reference_tokens(raw.ref_tokens, f"{where}.ref_tokens")
        if raw.ref_text is not None:
            validate_text(raw.ref_text, max_chars=self.engine.info.max_ref_text_chars,
                          field=f"{where}.ref_text")  # fmt: skip
        data = raw.model_dump()
        data["language"] = _language(raw.language, f"{where}.language")
        data["defaults"] = raw.defaults.model_dump(exclude_none=True)
        return StoredVoice(**data)

    async def resolve(self, voice: str, param: str = "voice") -> VoiceChoice:
        """A built-in name, ``seed:N`` or a saved voice; anything else is a 404."""
        if voice in BUILTIN_VOICES:
            return VoiceChoice(seed=BUILTIN_VOICES[voice])
        if voice.startswith("seed:"):
            if not valid_seed_voice(voice):
                raise BadRequestError(f"seed voices are seed:N with N in 0…{limits.SEED[1]}",
                                      param=param)  # fmt: skip
            return VoiceChoice(seed=int(voice[5:]))
        saved = await asyncio.to_thread(self.store.get, voice) if valid_voice_name(voice) else None
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


def _language(tag: str | None, field: str = "language") -> str | None:
    return None if tag is None else normalize_language(tag, field)
