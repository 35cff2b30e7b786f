"""Mounts the HTTP API under /api/v1."""
from __future__ import annotations

from fastapi import FastAPI

from api import idempotency, messages, phone_checks
from scheduler.routes import RouteTable

from . import docs, errors, links, login, senders, short_links, tariffs, tasks, templates, webhooks


def create(app: FastAPI, routes: RouteTable) -> None:
    errors.install(app)
    docs.install(app)
    app.include_router(login.router, prefix='/api/v1')
    app.include_router(templates.router, prefix='/api/v1')
    app.include_router(tasks.router, prefix='/api/v1')
    app.include_router(senders.router, prefix='/api/v1')
    app.include_router(tariffs.router, prefix='/api/v1')
    app.include_router(short_links.router, prefix='/api/v1')
    app.include_router(messages.router, prefix='/api/v1')
    app.include_router(phone_checks.router, prefix='/api/v1')
    idempotency.install(app)
    app.include_router(links.router)  # /s/ and /t/: public, outside the API
    app.include_router(webhooks.router(routes))
