"""TLS: the context that verifies the server (a CA bundle of one's own) and presents a client
certificate (mTLS)."""

from __future__ import annotations

import os
import ssl

import httpx


def ssl_context(
    ca: str | os.PathLike[str] | None,
    cert: str | os.PathLike[str] | None,
    key: str | os.PathLike[str] | None,
) -> ssl.SSLContext | None:
    """The TLS context for ``ca``, ``cert`` and ``key`` (see :class:`BaseClient`); ``None``
    when none is given (httpx's default verification applies).

    Raises:
        ValueError: ``key`` without ``cert``.
        OSError, ssl.SSLError: a file is missing or not a PEM certificate or key.
    """
    if key is not None and cert is None:
        raise ValueError("a client key needs its certificate (cert)")
    if ca is None and cert is None:
        return None
    ctx = (
        ssl.create_default_context(cafile=os.fspath(ca))
        if ca is not None
        else httpx.create_ssl_context()
    )
    if cert is not None:
        ctx.load_cert_chain(os.fspath(cert), None if key is None else os.fspath(key))
    return ctx
