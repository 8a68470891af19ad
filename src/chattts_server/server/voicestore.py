"""Saved voices: the :class:`VoiceStore` protocol the server sees, and its two stores.

- :class:`SQLiteVoiceStore` (the default): ``<data_dir>/voices.db``. The schema is versioned
  with ``PRAGMA user_version`` and migrated at open, in one transaction. Every write is one
  transaction (``BEGIN IMMEDIATE``) in WAL mode with ``synchronous=FULL``: a create that was
  acknowledged survives a crash of the process, and none is ever half-written.
- :class:`~.pgstore.PostgresVoiceStore` (``--database-url postgresql://…``): the same schema,
  versioning and guarantees in PostgreSQL, shared by every server process pointed at it.

:func:`open_store` picks one from the settings. Blocking calls: the async layer runs them in a
thread. Errors::

    VoiceStoreError              (code, field)
    ├── VoiceExistsError         a voice of that name exists
    ├── VoiceMissingError        no voice of that name
    ├── UnstorableValueError     a value the database cannot hold (NUL in PostgreSQL text)
    ├── StoreSchemaError         the database's schema is newer than this server
    └── StoreUnavailableError    cannot open or reach the store (driver missing, unreachable)
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
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

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


class VoiceStoreError(Exception):
    """Base of every store error: a machine-readable ``code`` and, where one value is to blame,
    its ``field``."""

    code = "voice_store_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class VoiceExistsError(VoiceStoreError):
    code = "voice_exists"


class VoiceMissingError(VoiceStoreError):
    code = "voice_not_found"


class UnstorableValueError(VoiceStoreError):
    code = "invalid_characters"


class StoreSchemaError(VoiceStoreError):
    code = "voice_store_schema_too_new"


class StoreUnavailableError(VoiceStoreError):
    code = "voice_store_unavailable"


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


class VoiceStore(Protocol):
    """What the server needs of a store. Every write is one transaction: all of it or none."""

    location: str  # where the voices are, for logs and errors (never a password)

    def create(self, voice: StoredVoice) -> StoredVoice:
        """Insert; :class:`VoiceExistsError` if the name is taken."""
        ...

    def import_many(
        self, voices: list[StoredVoice], *, overwrite: bool
    ) -> tuple[list[str], list[str]]:
        """All or nothing, in one transaction. Returns (written, skipped as existing)."""
        ...

    def get(self, name: str) -> StoredVoice | None: ...

    def list(self) -> list[StoredVoice]:
        """Every saved voice, by name."""
        ...

    def update(self, name: str, changes: dict[str, Any]) -> StoredVoice:
        """Change ``description``, ``language``, ``defaults`` (others are ignored);
        :class:`VoiceMissingError` if there is no such voice."""
        ...

    def delete(self, name: str) -> None:
        """:class:`VoiceMissingError` if there is no such voice."""
        ...

    def close(self) -> None: ...


UPDATABLE = frozenset({"description", "language", "defaults"})


def open_store(database_url: str | None, data_dir: Path) -> VoiceStore:
    """The store the settings name: PostgreSQL for ``postgresql://…`` (or ``postgres://…``),
    else SQLite at ``<data_dir>/voices.db``. Raises :class:`VoiceStoreError` with advice."""
    if database_url is None:
        return SQLiteVoiceStore(data_dir / "voices.db")
    scheme = urlsplit(database_url).scheme
    if scheme not in ("postgresql", "postgres"):
        raise StoreUnavailableError(
            f"database_url {redact_url(database_url)!r}: only postgresql://user:password@host"
            ":port/dbname is supported (leave it unset for SQLite in the data dir)",
            code="bad_database_url",
        )
    from .pgstore import PostgresVoiceStore

    return PostgresVoiceStore(database_url)


def redact_url(url: str) -> str:
    """``url`` without its password (in the authority or as a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable database url>"
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hostinfo}"
    query = "&".join(
        ("password=***" if item.lower().startswith("password=") else item)
        for item in parts.query.split("&")
    )
    return parts._replace(netloc=netloc, query=query).geturl()


class SQLiteVoiceStore:
    """Thread-safe access to the voice table (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._wal()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (OSError, sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailableError(
                f"cannot open the voice database {path}: {exc}; check that the data dir "
                "(--data-dir) is writable and holds a chattts-server voices.db"
            ) from exc

    def _wal(self) -> None:
        """``journal_mode=WAL``. While another process opens the same new file SQLite can answer
        "database is locked" at once, without waiting out the busy timeout: retry a while."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

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
                raise StoreSchemaError(
                    f"{self.path} has schema {version}; this server knows up to "
                    f"{SCHEMA_VERSION}: run a newer chattts-server"
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
                raise VoiceExistsError(f"voice {voice.name!r} exists", field="name") from exc
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
        sets = {k: v for k, v in changes.items() if k in UPDATABLE}
        if "defaults" in sets:
            sets["defaults"] = json.dumps(sets["defaults"])
        sets["updated_at"] = time.time()
        assignments = ", ".join(f"{k} = :{k}" for k in sets)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE voices SET {assignments} WHERE name = :name", {**sets, "name": name}
            )
            if cur.rowcount == 0:
                raise VoiceMissingError(f"no voice {name!r}", field="name")
            row = db.execute("SELECT * FROM voices WHERE name = ?", (name,)).fetchone()
        return StoredVoice.from_row(row)

    def delete(self, name: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM voices WHERE name = ?", (name,)).rowcount == 0:
                raise VoiceMissingError(f"no voice {name!r}", field="name")

    def close(self) -> None:
        with self._lock:
            self._db.close()
