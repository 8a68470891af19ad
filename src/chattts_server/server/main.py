"""``chattts-server serve``: settings from flags and env, model check, then uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from ..settings import Settings

log = logging.getLogger(__name__)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags win over env vars (``CHATTTS_SERVER_*``), which win over defaults."""
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    return Settings(**given)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``serve`` (and of ``serve-ray``, which serves the same app)."""
    from ..settings import add_flags

    parser.add_argument(
        "--test-model",
        choices=("tiny", "full"),
        help="serve a generated random-weight model (noise, not speech) from the data dir",
    )
    add_flags(parser)


def run(args: argparse.Namespace) -> int:
    # Until uvicorn listens nothing is in flight: SIGTERM then ends start-up at once (as PID 1 in
    # a container the default action would ignore it, and `docker stop` would wait for SIGKILL).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_while_starting)
    import uvicorn

    from ..engine import create_engine, model_problem
    from .app import create_app
    from .observe import configure_logging
    from .voicestore import VoiceStoreError, open_store

    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    if getattr(args, "test_model", None):
        settings = _with_test_model(settings, args.test_model)
    engine = create_engine(settings.engine_config())
    # fail at start-up, with advice, before opening the port: first the voice store (opened and
    # migrated here; a database it cannot reach says why at once), then the model
    try:
        store = open_store(settings.database_url, settings.data_dir)
    except VoiceStoreError as exc:
        print(f"chattts-server: {exc}", file=sys.stderr)
        return 2
    if advice := model_problem(settings.engine_config()):
        store.close()
        print(f"chattts-server: {advice}", file=sys.stderr)
        return 2
    server: uvicorn.Server | None = None

    def fatal(exc: BaseException) -> None:
        print(f"chattts-server: {exc}", file=sys.stderr)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, engine, on_fatal=fatal, store=store)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # room for a GET /v1/tts/stream URL up to max_url_bytes plus headers, so an over-long
        # one gets our 414 (with its advice) rather than h11's bare 400
        h11_max_incomplete_event_size=settings.max_url_bytes + 64 * 1024,
        # SIGTERM/SIGINT: stop accepting, let requests in flight finish for this long, then
        # cancel what is left, stop the engine and exit
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        **tls_options(settings),
    )
    server = _graceful_server(config)
    server.run()
    return 1 if app.state.load_error else 0


def _exit_while_starting(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _graceful_server(config: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a stop by SIGTERM/SIGINT is a clean exit (status 0) once the
        graceful shutdown is done. uvicorn re-raises the signal afterwards, so the process
        would end "killed by SIGTERM" (status 143) although every request finished, except
        as a container's PID 1, where the kernel ignores that signal: one status either way."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server(config)


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options; with a client CA, clients without a certificate it signed are
    refused at the handshake (mTLS)."""
    if settings.tls_cert is None:
        if settings.tls_key or settings.tls_client_ca:
            raise SystemExit("chattts-server: --tls-key/--tls-client-ca need --tls-cert")
        return {}
    opts: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
    }
    if settings.tls_client_ca is not None:
        opts["ssl_ca_certs"] = str(settings.tls_client_ca)
        opts["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return opts


def _with_test_model(settings: Settings, size: str) -> Settings:
    """Serve a generated test model (made once under the data dir): noise, not speech."""
    from ..engine.testmodel import ensure_test_model

    path = ensure_test_model(settings.data_dir / "test-models" / size, size)  # type: ignore[arg-type]
    update: dict[str, object] = {"model_dir": path}
    if settings.engine == "onnx":  # and its export for the onnx engine (needs torch to make)
        from ..engine.onnx.export import ensure_export

        update["onnx_dir"] = ensure_export(path, settings.data_dir / "test-models" / f"{size}-onnx")
    return settings.model_copy(update=update)
