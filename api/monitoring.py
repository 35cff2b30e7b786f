"""`GET /healthz` for load balancers and orchestrators (public: says whether this process can reach its database) and
`GET /metrics` for Prometheus (clients in HERALD_METRICS_ALLOW, or an API key with the `metrics:read` scope)."""
from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from domain import metrics, sql
from domain.config import settings
from scheduler.engine import SWEEPS, Engine

from .errors import error_response

DATABASE_TIMEOUT_SECONDS = 3
JOBS = tuple(job.__name__ for job, _ in SWEEPS)


def router(engine: Engine) -> APIRouter:
    monitoring = APIRouter(include_in_schema=False)
    process_metrics = metrics.install(settings().role, lambda: {
        job: job in engine.singletons.held for job in JOBS} if engine.dispatching else {})

    @monitoring.get('/healthz')
    async def healthz() -> JSONResponse:
        try:
            await asyncio.wait_for(sql.execute('SELECT 1'), DATABASE_TIMEOUT_SECONDS)
            database = 'ok'
        except Exception as error:  # noqa: BLE001 - any failure to reach the database is what this reports
            database = f'unreachable: {type(error).__name__}'
        body = {'status': 'ok' if database == 'ok' else 'failing', 'database': database, 'role': settings().role,
                'pid': os.getpid(), 'jobs': sorted(engine.singletons.held)}
        return JSONResponse(body, status_code=200 if database == 'ok' else 503)

    @monitoring.get('/metrics')
    async def prometheus_metrics(request: Request) -> Response:
        client = request.client.host if request.client else None
        if refusal := await metrics.refusal(client, request.headers.get('authorization', '')):
            return error_response(403, refusal)
        return Response(await process_metrics.exposition(), headers={'Content-Type': CONTENT_TYPE_LATEST})

    return monitoring
