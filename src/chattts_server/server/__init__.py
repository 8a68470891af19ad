"""The HTTP server: app factory, routers, wire protocol and serving logic."""

from .app import create_app

__all__ = ["create_app"]
