"""`GET /healthz` for load balancers and orchestrators: public, says whether this process can reach its database."""
from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from domain import sql
from domain.config import settings
from scheduler.engine import Engine

DATABASE_TIMEOUT_SECONDS = 3


def router(engine: Engine) -> APIRouter:
    monitoring = APIRouter(include_in_schema=False)

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

    return monitoring
