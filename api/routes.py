"""Mounts the HTTP API under /api/v1."""
from __future__ import annotations

from fastapi import FastAPI

from scheduler.routes import RouteTable

from . import docs, errors, templates, webhooks


def create(app: FastAPI, routes: RouteTable) -> None:
    errors.install(app)
    docs.install(app)
    app.include_router(templates.router, prefix='/api/v1')
    app.include_router(webhooks.router(routes))
