"""Every /api/ request needs a bearer token; anything else answers 401 JSON."""
from __future__ import annotations

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, Response

from domain import auth
from domain.auth import Actor, Scope

from .docs import DOCS_PATH, OPENAPI_PATH

PUBLIC_API_PATHS = frozenset({DOCS_PATH, OPENAPI_PATH})


def _unauthorized(message: str) -> JSONResponse:
    return JSONResponse({'error': {'message': message}}, status_code=401,
                        headers={'WWW-Authenticate': 'Bearer'})


class ApiGuard(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next) -> Response:
        path = request.url.path
        if path.startswith('/api/') and path not in PUBLIC_API_PATHS:
            scheme, _, token = request.headers.get('authorization', '').partition(' ')
            if scheme.lower() != 'bearer' or not token.strip():
                return _unauthorized('Send an API key or token as "Authorization: Bearer <token>".')
            actor = await auth.actor_for_api_key(token.strip())
            if actor is None:
                return _unauthorized('The token is invalid, expired or revoked.')
            request.state.actor = actor
        return await call_next(request)


def api_actor(request: Request) -> Actor:
    """FastAPI dependency: the actor the guard authenticated."""
    actor = getattr(request.state, 'actor', None)
    if actor is None:
        raise HTTPException(status_code=401, detail='Not authenticated')
    return actor


def scoped(scope: Scope):
    """FastAPI dependency for a route that needs `scope`: the authenticated actor, or 403 when its key lacks it."""
    def actor_with_scope(request: Request) -> Actor:
        actor = api_actor(request)
        if not actor.has_scope(scope):
            raise HTTPException(status_code=403, detail=f'This API key lacks the scope "{scope.value}".')
        return actor
    return actor_with_scope
