"""Health, readiness, metrics and the voice list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..openapi import errors
from ..protocol import HealthStatus

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> HealthStatus:
    """The process is alive (answers while the model loads and while synthesis runs)."""
    return HealthStatus(status="ok")


@router.get(
    "/readyz",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "loading, or loading failed"}},
)
async def readyz(request: Request) -> Response:
    """200 once the model is loaded and warmed up; 503 before (or if loading failed)."""
    engine = request.app.state.engine
    if not engine.ready:
        error = request.app.state.load_error
        status = f"loading failed: {error}" if error else "loading"
        return JSONResponse(HealthStatus(status=status).model_dump(), 503)
    info = engine.info
    model = info.model
    body = HealthStatus(
        status="ready",
        model={
            "engine": info.name,
            "device": info.device,
            "sample_rate": info.sample_rate,
            "source": model.source if model else None,
            "test_model": model.is_test_model if model else None,
            "fingerprint": model.fingerprint if model else None,
        },
    )
    return JSONResponse(body.model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **errors(401),
        200: {"description": "Prometheus metrics", "content": {CONTENT_TYPE_LATEST: {}}},
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    state = request.app.state
    worker = state.worker
    body = state.metrics.exposition(
        ready=state.engine.ready,
        queue_limit=worker.capacity - worker.concurrency,
        in_flight_limit=worker.concurrency,
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
