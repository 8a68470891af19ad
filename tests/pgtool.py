"""A private PostgreSQL for the tests: Debian's server binaries (``postgresql``), started by the
tests with ``initdb`` + ``pg_ctl`` on a temporary directory and a free port, stopped at the end.
Never the packaged cluster, never a mock.

``require_postgres()`` skips with the reason when the server binaries or psycopg are missing,
except under ``CI=true``, where that is a failure (``make test`` installs ``postgresql`` as root).
As root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root). Host
connections need a password (scram-sha-256), so the tests exercise URLs that carry one.

Fixtures (import them into a conftest): ``postgres`` — one server per session; ``pg_url`` — a
fresh, empty database for each test, dropped after it.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pg_bindir() -> Path | None:
    """The newest Debian server (``/usr/lib/postgresql/N/bin``), else ``initdb`` on PATH."""

    def version(p: Path) -> int:
        return int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def require_postgres() -> Path:
    bindir = pg_bindir()
    reason = None
    if bindir is None:
        reason = "Debian's postgresql is not installed (make test installs it when run as root)"
    else:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            reason = "psycopg is not installed (pip install 'chattts-server[postgres]'; in dev)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    assert bindir is not None
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One private server: ``start()``, ``url(db)``, ``new_database()``, ``stop()``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # as root under /tmp, which the postgres user can reach (TMPDIR may not be); short, for
        # the socket path's 107-byte limit
        where = "/tmp" if os.geteuid() == 0 and Path("/tmp").is_dir() else None
        self.root = Path(tempfile.mkdtemp(prefix="chattts-pg-", dir=where))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_urlsafe(12)
        self.port = 0
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:  # the server refuses root: run it as Debian's postgres user
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.root, account.pw_uid, account.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user:
            os.chown(pwfile, self._user["user"], self._user["group"])
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
        )  # fmt: skip

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        r = subprocess.run(
            [str(self.bindir / tool), *args], capture_output=True, text=True, timeout=120,
            cwd=self.root, env=env, **self._user,
        )  # fmt: skip
        if r.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stdout}{r.stderr}\n{log}")
        return r

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (again, after a stop), else on a free one."""
        for attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port = port or free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=100 -c shared_buffers=16MB"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", options, "start")  # fmt: skip
                return
            except RuntimeError:
                if attempt == 2 or port:
                    raise

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres", password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://postgres:{pw}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        assert re.fullmatch(r"t_[0-9a-f]{12}", name), name
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    started = time.monotonic()
    server = PostgresServer(require_postgres())
    try:
        server.start()
        print(f"\nprivate PostgreSQL on port {server.port} in {time.monotonic() - started:.1f}s")
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.new_database()
    yield url
    postgres.drop_database(url)
