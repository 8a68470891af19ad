"""Saved voices in SQLite (``<data_dir>/voices.db``).

The schema is versioned with ``PRAGMA user_version`` and migrated at open, in one transaction.
Every write is one transaction (``BEGIN IMMEDIATE``) in WAL mode with ``synchronous=FULL``: a
create that was acknowledged survives a crash of the process, and none is ever half-written.
Blocking calls: the async layer runs them in a thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

VoiceKind = Literal["seed", "spk_emb", "ref_audio"]

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # version 1
        """CREATE TABLE voices (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('seed', 'spk_emb', 'ref_audio')),
            seed INTEGER,
            spk_emb TEXT,
            ref_tokens TEXT,
            ref_text TEXT,
            description TEXT,
            language TEXT,
            defaults TEXT NOT NULL DEFAULT '{}',
            model_fingerprint TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            CHECK ((kind = 'ref_audio') = (ref_tokens IS NOT NULL AND ref_text IS NOT NULL)),
            CHECK (kind = 'ref_audio' OR spk_emb IS NOT NULL)
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class VoiceExistsError(Exception):
    pass


class VoiceMissingError(Exception):
    pass


@dataclass
class StoredVoice:
    """Everything that makes a voice reproducible."""

    name: str
    kind: VoiceKind
    model_fingerprint: str
    seed: int | None = None
    spk_emb: str | None = None
    ref_tokens: str | None = None
    ref_text: str | None = None
    description: str | None = None
    language: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredVoice:
        data = dict(row)
        data["defaults"] = json.loads(data["defaults"])
        return cls(**data)


class VoiceStore:
    """Thread-safe access to the voice table (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema {version}; this server knows up to {SCHEMA_VERSION}"
                )
            for statements in _MIGRATIONS[version:]:
                for sql in statements:
                    db.execute(sql)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def create(self, voice: StoredVoice) -> StoredVoice:
        try:
            with self._tx() as db:
                self._insert(db, voice, "INSERT")
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise VoiceExistsError(voice.name) from exc
            raise
        return voice

    def import_many(
        self, voices: list[StoredVoice], *, overwrite: bool
    ) -> tuple[list[str], list[str]]:
        """All or nothing, in one transaction. Returns (written, skipped as existing)."""
        written, skipped = [], []
        with self._tx() as db:
            for voice in voices:
                exists = db.execute("SELECT 1 FROM voices WHERE name = ?", (voice.name,))
                if exists.fetchone() and not overwrite:
                    skipped.append(voice.name)
                    continue
                self._insert(db, voice, "INSERT OR REPLACE")
                written.append(voice.name)
        return written, skipped

    @staticmethod
    def _insert(db: sqlite3.Connection, voice: StoredVoice, verb: str) -> None:
        now = time.time()
        voice.created_at = voice.created_at or now
        voice.updated_at = now
        row = {**voice.to_json(), "defaults": json.dumps(voice.defaults)}
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        db.execute(f"{verb} INTO voices ({cols}) VALUES ({marks})", row)

    def get(self, name: str) -> StoredVoice | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM voices WHERE name = ?", (name,)).fetchone()
        return StoredVoice.from_row(row) if row else None

    def list(self) -> list[StoredVoice]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM voices ORDER BY name").fetchall()
        return [StoredVoice.from_row(r) for r in rows]

    def update(self, name: str, changes: dict[str, Any]) -> StoredVoice:
        allowed = {"description", "language", "defaults"}
        sets = {k: v for k, v in changes.items() if k in allowed}
        if "defaults" in sets:
            sets["defaults"] = json.dumps(sets["defaults"])
        sets["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = :{k}" for k in sets)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE voices SET {assignments} WHERE name = :name", {**sets, "name": name}
            )
            if cur.rowcount == 0:
                raise VoiceMissingError(name)
            row = db.execute("SELECT * FROM voices WHERE name = ?", (name,)).fetchone()
        return StoredVoice.from_row(row)

    def delete(self, name: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM voices WHERE name = ?", (name,)).rowcount == 0:
                raise VoiceMissingError(name)

    def close(self) -> None:
        with self._lock:
            self._db.close()
