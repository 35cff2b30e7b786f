"""The audit log: who created, changed or deleted what."""
from __future__ import annotations

from typing import Any

from .auth import Actor
from .models import AuditEvent


async def record(actor: Actor, action: str, entity_type: str, entity_id: object, summary: str = '',
                 changes: dict[str, Any] | None = None) -> None:
    await AuditEvent.create(actor_id=actor.user_id, actor_label=actor.label, action=action,
                            entity_type=entity_type, entity_id=str(entity_id), summary=summary[:500],
                            changes=changes or {})


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields that changed, as {field: [old, new]}."""
    return {key: [before.get(key), value] for key, value in after.items() if before.get(key) != value}


async def recent(limit: int = 50, offset: int = 0, entity_type: str | None = None) -> tuple[int, list[AuditEvent]]:
    query = AuditEvent.all()
    if entity_type:
        query = query.filter(entity_type=entity_type)
    return await query.count(), await query.order_by('-at', '-id').offset(offset).limit(limit)
