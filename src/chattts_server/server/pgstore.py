"""Saved voices in PostgreSQL (``--database-url postgresql://…``), shared by every server process
pointed at the same database.

The same table, constraints and guarantees as the SQLite store: the schema is versioned (the
one-row table ``voice_schema``) and migrated at open in one transaction, under an advisory lock so
that processes starting together migrate once; every write is one transaction, committed before
the call returns (PostgreSQL's default ``synchronous_commit=on``), so a create that was
acknowledged survives a crash of the server process, and none is ever half-written. Nothing is
cached here: every read asks the database, so a voice written by one process is seen by the
others at once.

Connections come from a ``psycopg_pool.ConnectionPool`` (checked before each use, so a restarted
database costs no failed request once it is back). ``psycopg`` is an optional dependency:
``pip install 'chattts-server[postgres]'``. The URL's password never appears in a log line or an
error (:func:`~.voicestore.redact_url`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from .voicestore import (
    UPDATABLE,
    StoredVoice,
    StoreSchemaError,
    StoreUnavailableError,
    UnstorableValueError,
    VoiceExistsError,
    VoiceMissingError,
    redact_url,
)

log = logging.getLogger(__name__)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # version 1: the SQLite store's version 1, in PostgreSQL's types
        """CREATE TABLE voices (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('seed', 'spk_emb', 'ref_audio')),
            seed BIGINT,
            spk_emb TEXT,
            ref_tokens TEXT,
            ref_text TEXT,
            description TEXT,
            language TEXT,
            defaults JSONB NOT NULL DEFAULT '{}',
            model_fingerprint TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            CHECK ((kind = 'ref_audio') = (ref_tokens IS NOT NULL AND ref_text IS NOT NULL)),
            CHECK (kind = 'ref_audio' OR spk_emb IS NOT NULL)
        )""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
# pg_advisory_xact_lock key for migrations: any fixed bigint (here "chattts\0" as bytes)
_MIGRATION_LOCK = int.from_bytes(b"chattts\0", "big", signed=True)
COLUMNS = tuple(f.name for f in dataclasses.fields(StoredVoice))
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM voices"
CONNECT_TIMEOUT_S = 10
# Waiting for a free (or new) connection, then 503 + Retry-After. Also how long the pool keeps
# retrying (with backoff) to replace a lost connection before it gives up, after which the
# next request tries at once: a database that comes back is used again within seconds.
POOL_TIMEOUT_S = 5.0


class PostgresVoiceStore:
    """The voice table in PostgreSQL, through a connection pool (thread-safe)."""

    def __init__(self, url: str, *, max_connections: int = 8) -> None:
        self.location = redact_url(url)
        self._secrets = _secrets(url)
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise StoreUnavailableError(
                f"--database-url {self.location} needs psycopg 3 and psycopg_pool, which are "
                "not installed: pip install 'chattts-server[postgres]'",
                code="postgres_driver_missing",
            ) from exc
        self._psycopg = psycopg
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in url:
            kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
        try:  # one direct connection first: its error says why, and it migrates
            with psycopg.connect(url, **kwargs) as conn:
                self._migrate(conn)
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot open the voice database {self.location}: {self._scrub(exc)}; check that "
                "PostgreSQL runs there, accepts this user and the database exists "
                "(createdb), or leave --database-url unset for SQLite in the data dir",
            ) from exc
        self._pool = ConnectionPool(
            url,
            kwargs=kwargs,
            min_size=1,
            max_size=max_connections,
            open=False,
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_S,
            reconnect_timeout=POOL_TIMEOUT_S,
            name="chattts-voices",
        )
        try:
            self._pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreUnavailableError(
                f"cannot open the voice database {self.location}: {self._scrub(exc)}"
            ) from exc
        log.info("voices in PostgreSQL at %s (schema %d)", self.location, SCHEMA_VERSION)

    # --- plumbing --------------------------------------------------------------------------

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        """A pooled connection (autocommit: reads see every commit at once); a lost or
        unreachable database becomes :class:`StoreUnavailableError` (503)."""
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailableError(
                f"the voice database {self.location} is unreachable: {self._scrub(exc)}"
            ) from exc

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._conn() as conn, conn.transaction():
            yield conn

    def _migrate(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            exists = conn.execute("SELECT to_regclass('voice_schema') IS NOT NULL AS e")
            if not exists.fetchone()["e"]:
                conn.execute(
                    "CREATE TABLE voice_schema (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), "
                    "version INTEGER NOT NULL)"
                )
            row = conn.execute("SELECT version FROM voice_schema").fetchone()
            version = row["version"] if row else 0
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.location} has voice schema {version}; this server knows up to "
                    f"{SCHEMA_VERSION}: run a newer chattts-server"
                )
            for statements in _MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute(
                "INSERT INTO voice_schema (version) VALUES (%s) "
                "ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
                (SCHEMA_VERSION,),
            )

    def _row(self, voice: StoredVoice) -> dict[str, Any]:
        from psycopg.types.json import Jsonb

        row = voice.to_json()
        _check_storable(row)
        row["defaults"] = Jsonb(voice.defaults)
        return row

    # --- the VoiceStore protocol -----------------------------------------------------------

    def create(self, voice: StoredVoice) -> StoredVoice:
        _stamp(voice)
        row = self._row(voice)
        marks = ", ".join(f"%({c})s" for c in COLUMNS)
        try:
            with self._tx() as conn:
                conn.execute(f"INSERT INTO voices ({', '.join(COLUMNS)}) VALUES ({marks})", row)
        except self._psycopg.errors.UniqueViolation as exc:
            raise VoiceExistsError(f"voice {voice.name!r} exists", field="name") from exc
        return voice

    def import_many(
        self, voices: list[StoredVoice], *, overwrite: bool
    ) -> tuple[list[str], list[str]]:
        """All or nothing, in one transaction. Returns (written, skipped as existing)."""
        marks = ", ".join(f"%({c})s" for c in COLUMNS)
        if overwrite:
            replace = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "name")
            conflict = f"DO UPDATE SET {replace}"
        else:
            conflict = "DO NOTHING"
        sql = (
            f"INSERT INTO voices ({', '.join(COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT (name) {conflict} RETURNING name"
        )
        rows = []
        for voice in voices:
            _stamp(voice)
            rows.append(self._row(voice))
        written, skipped = [], []
        with self._tx() as conn:
            for voice, row in zip(voices, rows, strict=True):
                if conn.execute(sql, row).fetchone() is None:
                    skipped.append(voice.name)
                else:
                    written.append(voice.name)
        return written, skipped

    def get(self, name: str) -> StoredVoice | None:
        if "\0" in name:
            return None
        with self._conn() as conn:
            row = conn.execute(f"{_SELECT} WHERE name = %s", (name,)).fetchone()
        return StoredVoice(**row) if row else None

    def list(self) -> list[StoredVoice]:
        with self._conn() as conn:
            rows = conn.execute(f'{_SELECT} ORDER BY name COLLATE "C"').fetchall()
        return [StoredVoice(**r) for r in rows]

    def update(self, name: str, changes: dict[str, Any]) -> StoredVoice:
        from psycopg.types.json import Jsonb

        sets = {k: v for k, v in changes.items() if k in UPDATABLE}
        _check_storable(sets)
        if "defaults" in sets:
            sets["defaults"] = Jsonb(sets["defaults"])
        sets["updated_at"] = _now()
        assignments = ", ".join(f"{k} = %({k})s" for k in sets)
        with self._tx() as conn:
            row = conn.execute(
                f"UPDATE voices SET {assignments} WHERE name = %(name)s "
                f"RETURNING {', '.join(COLUMNS)}",
                {**sets, "name": name},
            ).fetchone()
            if row is None:
                raise VoiceMissingError(f"no voice {name!r}", field="name")
        return StoredVoice(**row)

    def delete(self, name: str) -> None:
        with self._tx() as conn:
            if conn.execute("DELETE FROM voices WHERE name = %s", (name,)).rowcount == 0:
                raise VoiceMissingError(f"no voice {name!r}", field="name")

    def close(self) -> None:
        self._pool.close()


def _now() -> float:
    return time.time()


def _stamp(voice: StoredVoice) -> None:
    """The SQLite store's timestamps: created once, updated on every write."""
    now = _now()
    voice.created_at = voice.created_at or now
    voice.updated_at = now


def _check_storable(values: dict[str, Any]) -> None:
    """PostgreSQL text (and JSONB) cannot hold NUL characters, which SQLite takes: refuse them,
    naming the field, rather than fail as a server error."""
    for key, value in values.items():
        text = json.dumps(value) if isinstance(value, dict) else value
        if isinstance(text, str) and ("\0" in text or "\\u0000" in text):
            raise UnstorableValueError(f"{key} contains a NUL character", field=key)


def _secrets(url: str) -> list[str]:
    """The password as written in the URL and decoded, to scrub from messages."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        for item in parts.query.split("&"):
            key, _, value = item.partition("=")
            if key.lower() == "password" and value:
                found += [value, unquote(value)]
    except ValueError:
        pass
    return sorted({s for s in found if s}, key=len, reverse=True)
