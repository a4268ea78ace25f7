"""The local web viewer: ``kobo open PATH`` (FastAPI API + the built Vue app).

``create_app(base_dir)`` builds the app; ``serve(...)`` checks the folder and the bundle and
runs it with uvicorn. Everything reads boards through :mod:`kohakuboard.reader`.
"""

from __future__ import annotations

from .app import create_app
from .server import DEFAULT_PORT, serve

__all__ = ["DEFAULT_PORT", "create_app", "serve"]
