"""A live server that wants TLS, a client certificate (mTLS) and an API key, for the tests of the
clients (the Python SDK's in ``tests/client``, the Go client's in ``tests/go``).

The fixtures are registered by the conftest of each folder that uses them (``from securetool
import certs, secure``); module-scoped, so each test module that takes them gets its own
certificates and server, gone when its tests are done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LiveServer, make_settings

KEY = "sk-secure-test-5f0c2d9e"  # the one API key the secure server takes


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files ``chattts-server certs`` writes: a CA, the server's and a client's pair."""
    from chattts_server.certs import make_dev_certs

    return make_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure(engine: object, certs: dict[str, Path]) -> Iterator[LiveServer]:
    """The server on https, taking only clients with a certificate from ``certs["ca"]`` that
    send ``KEY``."""
    from chattts_server.server import create_app  # here, as in the root conftest: cheap imports
    from chattts_server.server.main import tls_options

    settings = make_settings(
        api_keys=[KEY],
        tls_cert=certs["server"],
        tls_key=certs["server_key"],
        tls_client_ca=certs["ca"],
    )
    with LiveServer(create_app(settings, engine), **tls_options(settings)) as srv:
        yield srv
