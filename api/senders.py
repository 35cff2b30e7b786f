"""Sender names over the API: `GET senders` lists them, `PUT senders` requests names not yet known."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from domain import senders
from domain.auth import Actor, Scope
from domain.channels import Channel
from domain.models import SenderName, SenderStatus

from .auth import scoped
from .wire import ApiModel, Page, Paging, wire_errors, wire_field

router = APIRouter(tags=['Senders'])


class SenderOut(ApiModel):
    id: int
    name: str
    channel: Channel
    status: SenderStatus
    comment: str
    created_at: str
    decided_at: str | None


class SenderRequest(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    comment: str = Field('', max_length=2000)


class SendersBody(ApiModel):
    senders: list[SenderRequest] = Field(max_length=100)


def sender_to_api(sender: SenderName) -> dict[str, Any]:
    return {'id': sender.id, 'name': sender.name, 'channel': sender.channel, 'status': sender.status,
            'comment': sender.comment, 'createdAt': sender.created_at.isoformat(),
            'decidedAt': sender.decided_at.isoformat() if sender.decided_at else None}


@router.get('/senders', response_model=Page[SenderOut])
async def list_senders(paging: Paging = Depends(), status: SenderStatus | None = Query(None),
                       channel: Channel | None = Query(None),
                       actor: Actor = Depends(scoped(Scope.SETTINGS_READ))) -> dict[str, Any]:
    total, page = await senders.list_senders(actor, status, channel, offset=paging.offset, limit=paging.limit)
    return {'count': total, 'items': [sender_to_api(sender) for sender in page]}


@router.put('/senders', response_model=Page[SenderOut])
async def request_senders(body: SendersBody,
                          actor: Actor = Depends(scoped(Scope.SETTINGS_WRITE))) -> dict[str, Any]:
    """Request each name not yet known for its channel (requested, approved and rejected ones are left as they are);
    all or none. Answers the names sent, with their statuses."""
    with wire_errors(lambda field: wire_field(f'senders.{field}')):
        requested = await senders.request_senders(actor, [(row.name, row.channel, row.comment) for row in body.senders])
    return {'count': len(requested), 'items': [sender_to_api(sender) for sender in requested]}
