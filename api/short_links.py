"""Short links over the API: `GET /api/v1/shortLinks` (twin-api.md shape)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from domain import links, sql
from domain.auth import Actor, Scope
from domain.config import settings

from .auth import scoped
from .wire import ApiModel, Page, Paging

router = APIRouter(tags=['Short links'])


class ShortLinkOut(ApiModel):
    id: int
    message_id: str | None
    task_id: str | None
    content: str
    shortcut: str
    clicks: int
    created_at: str
    updated_at: str
    first_visited_at: str | None
    last_visited_at: str | None


@router.get('/shortLinks', response_model=Page[ShortLinkOut], response_model_by_alias=True)
async def list_short_links(message_id: str | None = Query(None, alias='messageId', max_length=64),
                           task_id: str | None = Query(None, alias='taskId', max_length=64),
                           paging: Paging = Depends(),
                           actor: Actor = Depends(scoped(Scope.MESSAGES_READ))) -> Page[ShortLinkOut]:
    total, rows = await links.list_short_links(actor, links.LinkFilter(message_id, task_id),
                                               paging.offset, paging.limit)
    return Page[ShortLinkOut](count=total, items=[_out(row) for row in rows])


def _out(row: dict[str, Any]) -> ShortLinkOut:
    return ShortLinkOut(
        id=row['id'], message_id=_text(row['message_id']), task_id=_text(row['task_id']), content=row['target'],
        shortcut=f'{settings().public_url}/s/{row["code"]}', clicks=row['clicks'],
        created_at=sql.utc_text(row['created_at']), updated_at=sql.utc_text(row['updated_at']),
        first_visited_at=sql.utc_text(row['first_visit_at']), last_visited_at=sql.utc_text(row['last_visit_at']))


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None
