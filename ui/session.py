"""The browser session: who is signed in, and the guard that sends everyone else to /login."""
from __future__ import annotations

from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nicegui import app, ui
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from domain import auth
from domain.auth import Actor
from domain.models import User

PUBLIC_PREFIXES = ('/_nicegui', '/login', '/setup', '/api/', '/webhooks/', '/s/', '/t/', '/healthz', '/metrics',
                   '/favicon')  # /metrics checks its callers itself (api/monitoring.py)
_has_users = False  # once Herald has a user it always will: no query per request after that


async def herald_has_users() -> bool:
    global _has_users  # noqa: PLW0603
    if not _has_users:
        _has_users = await auth.has_users()
    return _has_users


def reset_user_cache() -> None:
    global _has_users  # noqa: PLW0603
    _has_users = False


def sign_in(user: User) -> None:
    app.storage.user.update(user_id=user.id, session_version=user.session_version)


def sign_out() -> None:
    app.storage.user.pop('user_id', None)
    app.storage.user.pop('session_version', None)


async def current_user() -> User | None:
    return await auth.active_user(app.storage.user.get('user_id'), app.storage.user.get('session_version'))


async def current_actor() -> Actor | None:
    user = await current_user()
    return Actor.of(user) if user else None


def safe_redirect(target: str | None) -> str:
    """Only local paths: never let a crafted link send a user to another site after sign-in."""
    if target and target.startswith('/') and not target.startswith('//') and '\\' not in target:
        return target
    return '/'


class PageGuard(BaseHTTPMiddleware):
    """First-run set-up while there is no user; otherwise a page needs a signed-in user."""

    async def dispatch(self, request: Request, call_next) -> Response:
        path = request.url.path
        if not path.startswith(PUBLIC_PREFIXES):
            if not await herald_has_users():
                return RedirectResponse('/setup')
            if await current_user() is None:
                target = path + (f'?{request.url.query}' if request.url.query else '')
                return RedirectResponse(f'/login?redirect_to={quote(target)}')
        return await call_next(request)


ZONE_COOKIE = 'herald_tz'
# Every page tells the server the browser's time zone, so dates typed into filters mean the operator's days.
ZONE_SCRIPT = ('<script>document.cookie = "' + ZONE_COOKIE + '=" + Intl.DateTimeFormat().resolvedOptions().timeZone'
               ' + "; path=/; SameSite=Lax";</script>')


def browser_zone() -> str:
    """The browser's IANA time zone as its last page load reported it; UTC until then."""
    request = ui.context.client.request
    name = request.cookies.get(ZONE_COOKIE, '') if request is not None else ''
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return 'UTC'
    return name
