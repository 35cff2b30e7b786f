"""Mounts the HTTP API under /api/v1."""
from __future__ import annotations

from fastapi import FastAPI

from . import templates


def create(app: FastAPI) -> None:
    app.include_router(templates.router, prefix='/api/v1')
