"""``chattts-server serve-ray``: the whole server as a Ray Serve deployment of N replicas.

Each replica is the complete server of ``serve`` — engine, batcher, routes, streaming — built
in the replica's constructor: the model is loaded (and warmed up) there, before Serve routes a
request to it, so a replica whose model fails to load never turns healthy (a FastAPI startup
hook would not do: Serve can mark such a replica healthy). The app object is built on the
replica (``__serve_build_asgi_app__``), never pickled from the driver. Serve's proxy listens on
``--host``/``--port`` and spreads requests over replicas; streamed responses pass through it
chunk by chunk. Serve calls :meth:`ChatTTSReplica.check_health` periodically: it fails while
the engine is not ready, and Serve replaces a replica that fails it or whose process died.

Shared state: saved voices live in the voice store, which must be shared by all replicas —
PostgreSQL (``--database-url``) on more than one machine; the SQLite default works only while
every replica runs on this machine (one file in ``--data-dir``). Stream tokens are signed with
one secret that every replica gets (the driver makes one unless ``--stream-token-secret`` is
set). Every response carries ``X-Replica`` (Serve's replica id), so a request can be followed
to the replica that served it and to its log lines.

``ray`` is an optional extra: ``pip install 'chattts-server[ray]'``.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ..settings import Settings

log = logging.getLogger(__name__)
APP_NAME = "chattts"
DEPLOYMENT_NAME = "ChatTTSServer"


@dataclass(frozen=True)
class Scale:
    """How many replicas, and what each may use."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max) replicas; None: fixed ``replicas``
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    target_ongoing_requests: float | None = None  # autoscaling target; default max_batch

    @staticmethod
    def parse_autoscale(text: str) -> tuple[int, int]:
        lo, sep, hi = text.partition(":")
        try:
            bounds = (int(lo), int(hi))
        except ValueError:
            bounds = (-1, -1)
        if not sep or bounds[0] < 0 or bounds[1] < max(1, bounds[0]):
            raise argparse.ArgumentTypeError(f"--autoscale wants MIN:MAX with 0 ≤ MIN ≤ MAX ≥ 1, "
                                             f"not {text!r}")  # fmt: skip
        return bounds


def deployment_options(settings: Settings, scale: Scale) -> dict[str, Any]:
    """Serve's options for the deployment (a pure function: tested without Ray).

    ``max_ongoing_requests`` is what one replica can take: ``max_batch`` running plus
    ``max_queue`` waiting; beyond it Serve queues at the proxy (and the replica's own 503 with
    Retry-After is never reached by routing). Autoscaling follows ongoing requests per
    replica, aiming at ``max_batch`` (a full batch, nothing queued)."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": settings.max_batch + settings.max_queue,
        "health_check_period_s": 5.0,
        "health_check_timeout_s": 30.0,
        # a replica being stopped lets its requests in flight finish for this long
        "graceful_shutdown_timeout_s": float(settings.graceful_shutdown_s),
        "graceful_shutdown_wait_loop_s": 1.0,
        "ray_actor_options": {
            "num_cpus": scale.cpus_per_replica,
            "num_gpus": scale.gpus_per_replica,
            # torch's threads per replica: its share of the cores, not all of them
            "runtime_env": {
                "env_vars": {"OMP_NUM_THREADS": str(max(1, int(scale.cpus_per_replica)))}
            },
        },
    }
    if scale.autoscale is None:
        options["num_replicas"] = scale.replicas
    else:
        lo, hi = scale.autoscale
        options["autoscaling_config"] = {
            "min_replicas": lo,
            "max_replicas": hi,
            "initial_replicas": max(lo, min(hi, scale.replicas)),
            "target_ongoing_requests": scale.target_ongoing_requests or settings.max_batch,
        }
    return options


class ChatTTSReplica:
    """One replica: the whole server, its model loaded before Serve routes to it."""

    def __init__(self, settings_json: str) -> None:
        from ..engine import create_engine
        from .app import create_app
        from .observe import configure_logging

        settings = Settings.model_validate_json(settings_json)
        configure_logging(settings.log_level)
        self.engine = create_engine(settings.engine_config())
        self.engine.load()  # raises (with advice) if the weights are missing: replica fails
        self.server_app = create_app(settings, self.engine)
        self.replica_id = _replica_id()
        log.info("replica %s ready (pid %d)", self.replica_id, os.getpid())

    def __serve_build_asgi_app__(self) -> Any:
        return _ReplicaHeader(self.server_app, self.replica_id)

    def check_health(self) -> None:
        """Serve's health check: the engine is loaded and not stopped."""
        if not self.engine.ready:
            raise RuntimeError("engine not ready")


class _ReplicaHeader:
    """ASGI middleware: ``X-Replica`` on every response; ``X-Request-ID`` once.

    Serve's proxy gives every request an ``X-Request-ID`` (the caller's, or one it makes) and
    appends it to the response; the server takes that same id (it is well-formed), so its own
    copy of the header is dropped here rather than sent twice. A caller's malformed id is
    replaced by the server, and then both stay: the server's is the one in its log lines."""

    def __init__(self, app: Any, replica_id: str) -> None:
        self.app, self.header = app, (b"x-replica", replica_id.encode("latin-1", "replace"))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id")

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (k.lower() == b"x-request-id" and v == given)
                ]
                message = {**message, "headers": [*headers, self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


def _replica_id() -> str:
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # outside Serve (tests build the class directly)
        import socket

        return f"{socket.gethostname()}-{os.getpid()}"


def build_application(settings: Settings, scale: Scale) -> Any:
    """The Serve application (a bound deployment) for ``serve.run``."""
    from ray import serve

    deployment = serve.deployment(**deployment_options(settings, scale))(
        serve.ingress()(ChatTTSReplica)
    )
    return deployment.bind(settings.model_dump_json())


def app_builder(args: dict[str, str]) -> Any:
    """Serve's application builder, for ``serve run``/``serve deploy`` and KubeRay's RayService
    (``import_path: chattts_server.server.rayserve:app_builder``): the settings come from the
    ``CHATTTS_SERVER_*`` env vars of the replicas' containers, the scale from ``args``
    (``replicas``, ``autoscale`` as ``MIN:MAX``, ``replica_cpus``, ``replica_gpus``). Set
    ``CHATTTS_SERVER_STREAM_TOKEN_SECRET`` there: replicas must share it."""
    autoscale = args.get("autoscale")
    scale = Scale(
        replicas=int(args.get("replicas", 1)),
        autoscale=Scale.parse_autoscale(autoscale) if autoscale else None,
        cpus_per_replica=float(args.get("replica_cpus", 1)),
        gpus_per_replica=float(args.get("replica_gpus", 0)),
    )
    return build_application(Settings(), scale)


def run(args: argparse.Namespace) -> int:
    """Start or join a Ray cluster, deploy, and serve until SIGINT/SIGTERM."""
    from ..engine import model_problem
    from .main import _with_test_model, settings_from_args
    from .observe import configure_logging

    # Ray prints the replicas' log lines on this process's stdout: line by line, also when it
    # is a file or a pipe; and not folded by Ray's de-duplication (read when ray is imported)
    # into "[repeated 2x]": replicas' lines differ only in ids
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray
        from ray import serve
    except ImportError:
        print(
            "chattts-server: serve-ray needs Ray Serve: pip install 'chattts-server[ray]'",
            file=sys.stderr,
        )
        return 2
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    if args.test_model:
        settings = _with_test_model(settings, args.test_model)
    if settings.stream_token_secret is None:  # one secret for every replica
        settings = settings.model_copy(update={"stream_token_secret": secrets.token_hex(32)})
    if settings.database_url is None and (args.replicas > 1 or args.autoscale):
        log.warning(
            "voices are in SQLite under %s: shared only while every replica runs on this "
            "machine; use --database-url postgresql://… on a multi-node cluster",
            settings.data_dir,
        )
    if advice := model_problem(settings.engine_config()):
        print(f"chattts-server: {advice}", file=sys.stderr)
        return 2
    scale = Scale(
        replicas=args.replicas,
        autoscale=args.autoscale,
        cpus_per_replica=args.replica_cpus,
        gpus_per_replica=args.replica_gpus,
    )
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if args.address:
        init["address"] = args.address
    else:
        init["num_cpus"] = args.num_cpus
    ray.init(**init)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_application(settings, scale), name=APP_NAME, route_prefix="/")
        print(
            f"chattts-server: serving on http://{settings.host}:{settings.port} with Ray Serve "
            f"({_describe(scale)})",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


def _describe(scale: Scale) -> str:
    if scale.autoscale:
        return f"autoscaling {scale.autoscale[0]}–{scale.autoscale[1]} replicas"
    return f"{scale.replicas} replica{'s' * (scale.replicas != 1)}"


def add_parser(sub: Any) -> None:
    from .main import add_serve_arguments

    p = sub.add_parser(
        "serve-ray",
        help="serve on a Ray Serve cluster: N replicas of the whole server behind one port",
    )
    p.add_argument("--replicas", type=int, default=1, help="replicas (default 1)")
    p.add_argument(
        "--autoscale",
        type=Scale.parse_autoscale,
        metavar="MIN:MAX",
        help="autoscale between MIN and MAX replicas on ongoing requests per replica",
    )
    p.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs per replica (1)")
    p.add_argument("--replica-gpus", type=float, default=0.0, help="GPUs per replica (0)")
    p.add_argument(
        "--address",
        help="join this Ray cluster (e.g. ray://head:10001 or auto); default: start one here",
    )
    p.add_argument(
        "--num-cpus", type=int, help="CPUs of the local cluster started here (default: all)"
    )
    add_serve_arguments(p)
    p.set_defaults(func=run)
