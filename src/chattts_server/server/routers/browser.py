"""What a browser needs: the page at ``/`` and stream tokens for its ``EventSource``."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..openapi import errors
from ..protocol import StreamToken
from ..security import StreamTokens, client_id

router = APIRouter()


@cache
def _page() -> str:
    return (
        resources.files("chattts_server.server")
        .joinpath("static/index.html")
        .read_text(encoding="utf-8")
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The speaking page: one file from package data, no build step, nothing from a CDN."""
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})


@router.post(
    "/v1/stream-tokens",
    response_model=StreamToken,
    tags=["speech"],
    responses=errors(401, 429, 500),
)
async def stream_token(request: Request) -> StreamToken:
    """A short-lived token standing for the caller's API key (its rate and stream limits
    included), for ``GET /v1/tts/stream?token=``: a page never puts the key in a URL."""
    tokens: StreamTokens = request.app.state.stream_tokens
    token, expires = tokens.mint(client_id(request.scope))
    return StreamToken(token=token, expires_at=expires, expires_in=tokens.ttl_s)
