"""Mounts the HTTP API under /api/v1, its docs, the public short-link and tracking routes, and provider webhooks."""
from __future__ import annotations

from fastapi import FastAPI

from scheduler.routes import RouteTable

from . import (
    docs,
    errors,
    idempotency,
    links,
    login,
    messages,
    phone_checks,
    senders,
    short_links,
    tariffs,
    tasks,
    templates,
    webhooks,
)

API_PREFIX = '/api/v1'
RESOURCES = (login, messages, phone_checks, short_links, templates, tasks, senders, tariffs)


def create(app: FastAPI, routes: RouteTable) -> None:
    errors.install(app)
    docs.install(app)
    for module in RESOURCES:
        app.include_router(module.router, prefix=API_PREFIX)
    idempotency.install(app)
    app.include_router(links.router)  # /s/ and /t/: public, outside the API
    app.include_router(webhooks.router(routes))
