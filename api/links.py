"""The public addresses that messages carry (no sign-in, not under /api/): short links `/s/{code}`, and the open
pixel `/t/o/{token}.gif` and click redirect `/t/c/{token}?u=` of tracked emails."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from domain import links
from domain.config import settings

router = APIRouter(include_in_schema=False)
NO_CACHE = {'Cache-Control': 'no-store, no-cache, must-revalidate, max-age=0', 'Pragma': 'no-cache',
            'Expires': '0'}  # every visit reaches Herald, so every one counts


def _not_found() -> Response:
    return PlainTextResponse('Not found', status_code=404)


@router.get('/s/{code}')
async def short_link(code: str) -> Response:
    target = await links.visit_short_link(code)
    return RedirectResponse(target, status_code=302, headers=NO_CACHE) if target else _not_found()


@router.get('/t/o/{token}.gif')
async def email_opened(token: str) -> Response:
    message_id = links.Linker.of(settings()).verified(token, '')
    if message_id is None:
        return _not_found()
    await links.count_email(message_id, 'email_opens')
    return Response(links.GIF, media_type='image/gif', headers=NO_CACHE)


@router.get('/t/c/{token}')
async def email_clicked(token: str, u: str = '') -> Response:
    message_id = links.Linker.of(settings()).verified(token, u) if links.is_web_url(u) else None
    if message_id is None:
        return _not_found()
    await links.count_email(message_id, 'email_clicks')
    return RedirectResponse(u, status_code=302, headers=NO_CACHE)
