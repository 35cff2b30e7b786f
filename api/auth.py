"""Every /api/ request needs a bearer token (an API key or a user's auth token) and stays within its rate limit;
anything else answers 401 or 429 JSON."""
from __future__ import annotations

import math
import time
from collections.abc import Hashable

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, Response

from domain import auth
from domain.auth import Actor, Scope

from .docs import ASSETS_PATH, DOCS_PATH, OPENAPI_PATH
from .errors import error_response

LOGIN_PATH, REFRESH_PATH = '/api/v1/auth/login', '/api/v1/auth/refresh'
PUBLIC_API_PATHS = frozenset({DOCS_PATH, OPENAPI_PATH, LOGIN_PATH, REFRESH_PATH})


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse({'error': {'message': message}}, status_code=401, headers={'WWW-Authenticate': 'Bearer'})


class TokenBuckets:
    """One token bucket per caller: `per_minute` requests a minute on average, bursts of up to `per_minute`."""

    def __init__(self) -> None:
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # caller → (tokens left, when counted)

    def take(self, caller: Hashable, per_minute: int) -> float:
        """Take a token: 0 if there was one, else the seconds until there is."""
        moment = time.monotonic()
        tokens, counted = self._buckets.get(caller, (per_minute, moment))
        tokens = min(per_minute, tokens + (moment - counted) * per_minute / 60)
        if tokens >= 1:
            self._buckets[caller] = (tokens - 1, moment)
            return 0.0
        self._buckets[caller] = (tokens, moment)
        return (1 - tokens) * 60 / per_minute


class ApiGuard(BaseHTTPMiddleware):
    """Authenticates /api/ requests (the actor lands in `request.state.actor`) and applies the rate limits, which
    live in this process: each Herald process counts on its own."""

    def __init__(self, app, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.buckets = TokenBuckets()

    async def dispatch(self, request: Request, call_next) -> Response:
        path = request.url.path
        if path.startswith('/api/') and path not in PUBLIC_API_PATHS and not path.startswith(f'{ASSETS_PATH}/'):
            scheme, _, token = request.headers.get('authorization', '').partition(' ')
            if scheme.lower() != 'bearer' or not token.strip():
                return unauthorized('Send an API key or token as "Authorization: Bearer <token>".')
            actor = await auth.actor_for_token(token.strip())
            if actor is None:
                return unauthorized('The token is invalid, expired or revoked.')
            caller = ('key', actor.api_key_id) if actor.api_key_id else ('user', actor.user_id)
            wait = self.buckets.take(caller, actor.rate_limit_per_minute)
            if wait:
                return JSONResponse(
                    {'error': {'message': f'Rate limit of {actor.rate_limit_per_minute} requests a minute '
                                          'exceeded: slow down.'}},
                    status_code=429, headers={'Retry-After': str(math.ceil(wait))})
            request.state.actor = actor
        if path.startswith('/api/') and await _has_nul(request):
            return error_response(422, 'Text in a request may not contain NUL characters (\\u0000).')
        return await call_next(request)


async def _has_nul(request: Request) -> bool:
    """A NUL character in the query or a JSON body: no database stores it (PostgreSQL refuses it outright)."""
    if '%00' in request.url.query or '\x00' in request.url.path:
        return True
    return request.headers.get('content-type', '').startswith('application/json') and b'\\u0000' in await request.body()


def api_actor(request: Request) -> Actor:
    """FastAPI dependency: the actor the guard authenticated."""
    actor = getattr(request.state, 'actor', None)
    if actor is None:
        raise HTTPException(status_code=401, detail='Not authenticated')
    return actor


def scoped(scope: Scope):
    """FastAPI dependency for a route that needs `scope`: the authenticated actor, or 403 when its key lacks it.
    FastAPI runs dependencies before it validates parameters and body, so a wrong scope answers 403 before any
    422 (only a body that is not JSON at all is refused before)."""
    async def actor_with_scope(request: Request) -> Actor:
        actor = api_actor(request)
        if not actor.has_scope(scope):
            raise HTTPException(status_code=403, detail=f'This API key lacks the scope "{scope.value}".')
        return actor
    return actor_with_scope
