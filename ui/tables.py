"""Tables of the pages: columns, times shown in the browser's time zone, and server-side paging and sorting."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlencode

from nicegui import ui
from nicegui.events import GenericEventArguments

# The actions column of admin tables: its buttons emit `edit` and `delete` with the row.
EDIT_DELETE_CELL = '''
<q-td :props="props" auto-width>
  <q-btn flat dense round icon="edit" aria-label="Edit" @click="() => $parent.$emit('edit', props.row)" />
  <q-btn flat dense round color="grey-7" icon="delete" aria-label="Delete"
         @click="() => $parent.$emit('delete', props.row)" />
</q-td>
'''

E = TypeVar('E', bound=Enum)
Fetch = Callable[[int, int, str | None, bool], Awaitable[tuple[int, list[dict[str, Any]]]]]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def time_column(name: str, label: str, sortable: bool = True) -> dict[str, Any]:
    """A column of UTC ISO times (see `iso`), shown in the browser's time zone."""
    return {'name': name, 'label': label, 'field': name, 'sortable': sortable, 'align': 'left',
            ':format': 'value => value ? new Date(value).toLocaleString() : ""'}


def column(name: str, label: str, sortable: bool = False) -> dict[str, Any]:
    return {'name': name, 'label': label, 'field': name, 'sortable': sortable, 'align': 'left'}


def enum_or_none(kind: type[E], value: str | None) -> E | None:
    """An enum member from a URL query value; anything unknown means "no filter"."""
    try:
        return kind(value) if value else None
    except ValueError:
        return None


def day_or_none(value: str) -> date | None:
    """A date from a URL query value (YYYY-MM-DD); anything else means "no date"."""
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def set_query(path: str, filters: dict[str, str | None]) -> None:
    """Show the filters in the address bar, so that a reload or a shared link keeps them."""
    query = urlencode({key: value for key, value in filters.items() if value})
    ui.navigate.history.replace(f'{path}?{query}' if query else path)


class ServerTable:
    """A ui.table whose pages and sort order come from the server (Quasar's server-side pagination)."""

    def __init__(self, columns: list[dict[str, Any]], fetch: Fetch, *, sort_by: str | None = None,
                 descending: bool = False, rows_per_page: int = 20, page: int = 1,
                 on_loaded: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.fetch = fetch
        self.on_loaded = on_loaded
        self.table = ui.table(columns=columns, rows=[], row_key='id', pagination={
            'rowsPerPage': rows_per_page, 'page': max(1, page), 'sortBy': sort_by, 'descending': descending,
            'rowsNumber': 0,
        }).classes('w-full').props(':rows-per-page-options="[10, 20, 50, 100]"')  # no "All": tables may be huge
        self.table.on('request', self._on_request)

    async def _on_request(self, e: GenericEventArguments) -> None:
        await self.load(e.args['pagination'])

    async def load(self, pagination: dict[str, Any] | None = None) -> None:
        """Fetch the page that `pagination` asks for; without it, the page shown (e.g. after a change)."""
        pagination = {**self.table.pagination, **(pagination or {})}
        per_page, page = max(1, int(pagination['rowsPerPage'])), max(1, int(pagination['page']))
        sort_by, descending = pagination.get('sortBy'), bool(pagination.get('descending'))
        total, rows = await self.fetch((page - 1) * per_page, per_page, sort_by, descending)
        if not rows and total and page > 1:  # the page shown is gone (rows were deleted): show the last one
            page = -(-total // per_page)
            total, rows = await self.fetch((page - 1) * per_page, per_page, sort_by, descending)
        self.table.rows = rows
        self.table.pagination = {**pagination, 'page': page, 'rowsNumber': total}
        if self.on_loaded:
            self.on_loaded(self.table.pagination)
