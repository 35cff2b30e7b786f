"""Provider delivery reports at `/webhooks/{provider}/{route}` (public; each provider verifies its own requests).

Most providers POST their reports; some call the address with GET (Kannel's dlr-url), and WhatsApp Cloud verifies
the address with a GET carrying `hub.challenge` before it posts anything."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from domain.config import settings
from domain.providers import WebhookRejected, WebhookRequest
from scheduler.routes import RouteTable


def router(routes: RouteTable) -> APIRouter:
    webhooks = APIRouter()

    @webhooks.api_route('/webhooks/{provider}/{route}', methods=['GET', 'POST'], include_in_schema=False)
    async def receive(provider: str, route: str, request: Request) -> Response:
        known = routes.routes.get(route)
        if known is None or known.provider_name != provider:
            return JSONResponse({'error': {'message': f'No {provider} route named "{route}".'}}, status_code=404)
        webhook = WebhookRequest(body=await request.body(), headers=request.headers, method=request.method,
                                 url=_public_url(request), query=dict(request.query_params))
        answer_challenge = getattr(known.provider, 'answer_challenge', None)
        try:
            if request.method == 'GET' and answer_challenge and (challenge := answer_challenge(webhook)) is not None:
                return PlainTextResponse(challenge)
            moved = await routes.receive_webhook(route, webhook)
        except WebhookRejected as error:
            return JSONResponse({'error': {'message': str(error)}}, status_code=400)
        return JSONResponse({'accepted': moved})

    return webhooks


def _public_url(request: Request) -> str:
    """The address as the provider called it: Herald's public URL with this request's path and query."""
    query = f'?{request.url.query}' if request.url.query else ''
    return f'{settings().public_url}{request.url.path}{query}'
