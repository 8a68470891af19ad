"""The voice stores directly, each test on both (``voice_db``: SQLite and PostgreSQL): the same
behaviour, constraints, schema versioning and one transaction per write."""

from __future__ import annotations

import sqlite3
import sys
import threading
from typing import Any

import pytest

from chattts_server.server.voicestore import (
    SCHEMA_VERSION,
    StoredVoice,
    StoreSchemaError,
    StoreUnavailableError,
    UnstorableValueError,
    VoiceExistsError,
    VoiceMissingError,
    open_store,
    redact_url,
)

from .conftest import VoiceDB


def seed_voice(name: str, **kw: Any) -> StoredVoice:
    fields: dict[str, Any] = {
        "kind": "seed", "model_fingerprint": "abc123", "seed": 7, "spk_emb": "蛋糕" * 8,
        "description": "calm", "language": "en",
        "defaults": {"speed": 1.5, "temperature": 0.3, "lang": "en"},
    }  # fmt: skip
    return StoredVoice(name=name, **{**fields, **kw})


def integrity_errors() -> tuple[type[Exception], ...]:
    """What a constraint violation raises: the database's own error (the library never sends
    such a row; the schema is the last guard)."""
    errors: list[type[Exception]] = [sqlite3.IntegrityError]
    if "psycopg" in sys.modules:
        import psycopg

        errors.append(psycopg.IntegrityError)
    return tuple(errors)


def test_create_get_list_round_trip_exactly(voice_db: VoiceDB) -> None:
    store = voice_db.open()
    try:
        ref = StoredVoice(name="b-ref", kind="ref_audio", model_fingerprint="f",
                          ref_tokens="嗯" * 40, ref_text="参考 text", seed=2**32 - 1,
                          created_at=1234.5)  # fmt: skip
        made = [store.create(seed_voice("c-seed")), store.create(ref)]
        assert ref.created_at == 1234.5 and ref.updated_at > 0  # kept, and stamped
        assert made[0].created_at > 0 and made[0].created_at == made[0].updated_at
        assert store.get("c-seed") == made[0]
        assert store.get("b-ref") == ref
        assert store.get("nope") is None
        assert [v.name for v in store.list()] == ["b-ref", "c-seed"]
        assert store.list() == [ref, made[0]]
    finally:
        store.close()


def test_duplicates_missing_and_constraints(voice_db: VoiceDB) -> None:
    store = voice_db.open()
    try:
        first = store.create(seed_voice("dup"))
        with pytest.raises(VoiceExistsError) as exc:
            store.create(seed_voice("dup", seed=8, description="other"))
        assert exc.value.code == "voice_exists" and exc.value.field == "name"
        assert store.get("dup") == first
        with pytest.raises(VoiceMissingError):
            store.update("ghost", {"description": "x"})
        with pytest.raises(VoiceMissingError):
            store.delete("ghost")
        for bad in (
            seed_voice("no-emb", spk_emb=None),  # a seed voice carries its speaker string
            StoredVoice(name="half", kind="ref_audio", model_fingerprint="f", ref_tokens="x"),
            seed_voice("odd-kind", kind="builtin"),
            seed_voice("tokens", ref_tokens="x", ref_text="y"),  # only with ref_audio
        ):
            with pytest.raises(integrity_errors()):
                store.create(bad)
        assert [v.name for v in store.list()] == ["dup"]
    finally:
        store.close()


def test_update_changes_only_what_it_may(voice_db: VoiceDB) -> None:
    store = voice_db.open()
    try:
        made = store.create(seed_voice("u"))
        got = store.update("u", {"description": "calmer", "defaults": {"speed": 0.5},
                                 "seed": 99, "spk_emb": "hacked", "name": "x"})  # fmt: skip
        assert (got.description, got.defaults, got.seed, got.spk_emb, got.name) == (
            "calmer", {"speed": 0.5}, 7, made.spk_emb, "u")  # fmt: skip
        assert got.updated_at >= made.updated_at and got.created_at == made.created_at
        assert store.update("u", {"language": None}).language is None
        touched = store.update("u", {})
        assert store.get("u") == touched
        store.delete("u")
        assert store.get("u") is None and store.list() == []
    finally:
        store.close()


def test_import_is_one_transaction(voice_db: VoiceDB) -> None:
    store = voice_db.open()
    try:
        store.create(seed_voice("old", description="before"))
        batch = [seed_voice("new1"), seed_voice("old", description="after"), seed_voice("new2")]
        assert store.import_many(batch, overwrite=False) == (["new1", "new2"], ["old"])
        assert store.get("old").description == "before"  # type: ignore[union-attr]
        again = [seed_voice("old", description="after"), seed_voice("new3")]
        assert store.import_many(again, overwrite=True) == (["old", "new3"], [])
        assert store.get("old").description == "after"  # type: ignore[union-attr]
        # one bad record: nothing of the batch is written, whatever its place
        broken = [seed_voice("late1"), seed_voice("old", description="lost"),
                  seed_voice("bad", spk_emb=None), seed_voice("late2")]  # fmt: skip
        with pytest.raises(integrity_errors()):
            store.import_many(broken, overwrite=True)
        assert [v.name for v in store.list()] == ["new1", "new2", "new3", "old"]
        assert store.get("old").description == "after"  # type: ignore[union-attr]
    finally:
        store.close()


def test_two_stores_on_one_database_see_each_others_writes(voice_db: VoiceDB) -> None:
    """As two server processes do: nothing cached hides the other's writes."""
    a, b = voice_db.open(), voice_db.open()
    try:
        assert b.get("shared") is None
        a.create(seed_voice("shared"))
        assert b.get("shared") == a.get("shared")
        b.update("shared", {"description": "from b"})
        assert a.get("shared").description == "from b"  # type: ignore[union-attr]
        a.delete("shared")
        assert b.get("shared") is None and b.list() == []
        with pytest.raises(VoiceMissingError):
            b.delete("shared")
    finally:
        a.close()
        b.close()


def test_schema_is_versioned_and_opened_once_by_concurrent_starts(voice_db: VoiceDB) -> None:
    stores: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            stores.append(voice_db.open())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 4
    stores[0].create(seed_voice("kept"))
    for s in stores:
        s.close()
    assert _schema_version(voice_db) == SCHEMA_VERSION
    reopened = voice_db.open()  # a migrated database opens as it is
    assert [v.name for v in reopened.list()] == ["kept"]
    reopened.close()
    _set_schema_version(voice_db, SCHEMA_VERSION + 1)
    with pytest.raises(StoreSchemaError) as exc:
        voice_db.open()
    assert f"schema {SCHEMA_VERSION + 1}" in exc.value.message and "newer" in exc.value.message


def _schema_version(db: VoiceDB) -> int:
    if db.url is None:
        with sqlite3.connect(db.data_dir / "voices.db") as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
    import psycopg

    with psycopg.connect(db.url) as conn:
        rows = conn.execute("SELECT version FROM voice_schema").fetchall()
    assert len(rows) == 1
    return int(rows[0][0])


def _set_schema_version(db: VoiceDB, version: int) -> None:
    if db.url is None:
        conn = sqlite3.connect(db.data_dir / "voices.db")
        conn.execute(f"PRAGMA user_version={version}")
        conn.close()
        return
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as pg:
        pg.execute("UPDATE voice_schema SET version = %s", (version,))


# --- PostgreSQL only ------------------------------------------------------------------------


def test_postgres_refuses_nul_characters_naming_the_field(pg_url: str, tmp_path: Any) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can): a 400 naming the field, not a 500."""
    store = open_store(pg_url, tmp_path)
    try:
        with pytest.raises(UnstorableValueError) as exc:
            store.create(seed_voice("nul", description="a\0b"))
        assert (exc.value.code, exc.value.field) == ("invalid_characters", "description")
        store.create(seed_voice("ok"))
        with pytest.raises(UnstorableValueError):
            store.update("ok", {"defaults": {"lang": "e\0n"}})
        assert store.get("ok") == store.list()[0]
    finally:
        store.close()


def test_unreachable_database_is_one_clear_error_without_the_password(postgres: Any) -> None:
    wrong = postgres.url("postgres", password="Wr0ng-s3cret")
    with pytest.raises(StoreUnavailableError) as exc:
        open_store(wrong, postgres.root)
    text = str(exc.value)
    assert "password authentication failed" in text and "Wr0ng-s3cret" not in text
    assert "postgresql://postgres:***@127.0.0.1" in text and exc.value.code in text
    gone = postgres.url("t_000000000000")
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        open_store(gone, postgres.root)


def test_database_url_is_checked_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact_url("postgresql://u:p%40ss@h:5/db?sslmode=require&password=x") == (
        "postgresql://u:***@h:5/db?sslmode=require&password=***"
    )
    assert redact_url("postgres://h/db") == "postgres://h/db"
    with pytest.raises(StoreUnavailableError) as exc:
        open_store("mysql://u:hunter2@h/db", None)  # type: ignore[arg-type]
    assert exc.value.code == "bad_database_url" and "hunter2" not in str(exc.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the postgres extra were missing
    with pytest.raises(StoreUnavailableError) as exc:
        open_store("postgresql://u:hunter2@127.0.0.1:1/db", None)  # type: ignore[arg-type]
    assert exc.value.code == "postgres_driver_missing"
    assert "chattts-server[postgres]" in exc.value.message and "hunter2" not in str(exc.value)
