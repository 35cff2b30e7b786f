"""Provider delivery reports: `POST /webhooks/{provider}/{route}` (public; each provider verifies its own requests)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from domain.providers import WebhookRejected
from scheduler.routes import RouteTable


def router(routes: RouteTable) -> APIRouter:
    webhooks = APIRouter()

    @webhooks.post('/webhooks/{provider}/{route}', include_in_schema=False)
    async def receive(provider: str, route: str, request: Request) -> JSONResponse:
        known = routes.routes.get(route)
        if known is None or known.provider_name != provider:
            return JSONResponse({'error': {'message': f'No {provider} route named "{route}".'}}, status_code=404)
        try:
            moved = await routes.receive_webhook(route, await request.body(), request.headers)
        except WebhookRejected as error:
            return JSONResponse({'error': {'message': str(error)}}, status_code=400)
        return JSONResponse({'accepted': moved})

    return webhooks
