"""The agent as an HTTP service: `create_app(settings)` builds the FastAPI app."""

from .app import create_app

__all__ = ["create_app"]
