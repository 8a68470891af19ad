"""The scale-out tests' fixtures: :mod:`pgtool`'s private PostgreSQL (``postgres``)."""

from pgtool import pg_url, postgres  # noqa: F401  (fixtures)
