"""The Go client's tests take ``secure``, a server that wants mTLS and an API key, with its
``certs``, from ``tests/securetool.py`` (as ``tests/client`` does)."""

from securetool import certs, secure  # noqa: F401 (fixtures)
