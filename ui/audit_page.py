"""Settings → Audit log: who created, changed or deleted what (admins only)."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import audit
from domain.auth import Permission
from domain.models import AuditEvent

from .frame import page_frame
from .tables import ServerTable, column, iso, set_query, time_column


def _value(value: Any) -> str:
    return '—' if value is None or value == '' else str(value)


def _change(field: str, value: Any) -> str:
    """ "field: old → new" for a pair of audit.diff; just the value when the other side is missing (created or
    deleted) or when it is no pair."""
    if isinstance(value, list) and len(value) == 2:
        old, new = value
        if old is None or new is None:
            return f'{field}: {_value(new if old is None else old)}'
        return f'{field}: {_value(old)} → {_value(new)}'
    return f'{field}: {_value(value)}'


def format_changes(changes: dict[str, Any]) -> str:
    """One line per field."""
    return '\n'.join(_change(field, value) for field, value in changes.items())


def _row(event: AuditEvent) -> dict[str, Any]:
    return {'id': event.id, 'at': iso(event.at), 'actor': event.actor_label, 'action': event.action,
            'entity_type': event.entity_type, 'entity_id': event.entity_id, 'summary': event.summary,
            'changes': format_changes(event.changes)}


def _label(entity_type: str) -> str:
    return entity_type.replace('_', ' ').capitalize()


def create() -> None:
    @ui.page('/settings/audit')
    async def audit_page(entity_type: str = '') -> None:
        if not await page_frame('Audit log', Permission.MANAGE_USERS):
            return
        filters = {'entity_type': entity_type}

        async def fetch(offset: int, limit: int, _sort: str | None, _descending: bool) -> tuple[int, list[dict]]:
            total, events = await audit.recent(limit, offset, filters['entity_type'] or None)
            return total, [_row(event) for event in events]

        async def set_entity_type(value: str | None) -> None:
            filters['entity_type'] = value or ''
            set_query('/settings/audit', filters)
            await table.load({'page': 1})

        types = await AuditEvent.all().distinct().order_by('entity_type').values_list('entity_type', flat=True)
        options = {'': 'Everything'} | {t: _label(t) for t in sorted({*types, entity_type} - {''})}
        ui.select(options, label='Entity type', value=entity_type,
                  on_change=lambda e: set_entity_type(e.value)).classes('w-48')
        columns = [time_column('at', 'Time', sortable=False), column('actor', 'Who'), column('action', 'Action'),
                   column('entity_type', 'Entity type'), column('entity_id', 'Entity id'),
                   column('summary', 'Summary'),
                   {**column('changes', 'Changes'), 'style': 'white-space: pre-line', 'classes': 'text-caption'}]
        table = ServerTable(columns, fetch)
        await table.load()
