"""Settings → Sender names: operators request names, admins approve or reject them.

Also holds small table and dialog helpers that the other settings pages share."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlencode

from nicegui import ui
from nicegui.events import GenericEventArguments

from domain import senders
from domain.auth import Actor, Permission
from domain.channels import SENDER_CHANNELS, Channel
from domain.errors import HeraldError, ValidationError
from domain.models import SenderName, SenderStatus

from .forms import show_errors
from .frame import page_frame

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


def set_query(path: str, filters: dict[str, str | None]) -> None:
    """Show the filters in the address bar, so that a reload or a shared link keeps them."""
    query = urlencode({key: value for key, value in filters.items() if value})
    ui.navigate.history.replace(f'{path}?{query}' if query else path)


class ServerTable:
    """A ui.table whose pages and sort order come from the server (Quasar's server-side pagination)."""

    def __init__(self, columns: list[dict[str, Any]], fetch: Fetch, *, sort_by: str | None = None,
                 descending: bool = False, rows_per_page: int = 20) -> None:
        self.fetch = fetch
        self.table = ui.table(columns=columns, rows=[], row_key='id', pagination={
            'rowsPerPage': rows_per_page, 'page': 1, 'sortBy': sort_by, 'descending': descending, 'rowsNumber': 0,
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


async def confirm(question: str, action: str) -> bool:
    """Ask before something that cannot be undone."""
    with ui.dialog() as dialog, ui.card():
        ui.label(question)
        with ui.row().classes('w-full justify-end'):
            ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat')
            ui.button(action, color='negative', on_click=lambda: dialog.submit(True))
    confirmed = await dialog
    dialog.delete()
    return bool(confirmed)


async def attempt(action: Awaitable[Any], inputs: dict[str, ui.element] | None = None) -> bool:
    """Run a service call; show what went wrong (next to the inputs where it can) and say whether it worked."""
    try:
        await action
    except ValidationError as error:
        show_errors(error, inputs or {})
        return False
    except HeraldError as error:
        ui.notify(str(error), type='negative')
        return False
    return True


def _row(sender: SenderName) -> dict[str, Any]:
    return {
        'id': sender.id, 'name': sender.name, 'channel': sender.channel.label, 'status': sender.status.value,
        'comment': sender.comment, 'requested_by': sender.requested_by.email if sender.requested_by else '',
        'decided_by': sender.decided_by.email if sender.decided_by else '',
        'created_at': iso(sender.created_at), 'decided_at': iso(sender.decided_at),
    }


_CHANNELS = {c.value: c.label for c in Channel if c in SENDER_CHANNELS}
_STATUS_BADGE = r'''
<q-td :props="props">
  <q-badge :color="{requested: 'orange', approved: 'positive', rejected: 'negative'}[props.value]"
           :label="props.value" class="text-body2" />
</q-td>
'''
_ACTIONS = r'''
<q-td :props="props" auto-width>
  <template v-if="props.row.status === 'requested'">
    <q-btn flat dense no-caps color="positive" label="Approve" @click="() => $parent.$emit('approve', props.row)" />
    <q-btn flat dense no-caps color="negative" label="Reject" @click="() => $parent.$emit('reject', props.row)" />
  </template>
  <q-btn flat dense round color="grey-7" icon="delete" aria-label="Delete"
         @click="() => $parent.$emit('delete', props.row)" />
</q-td>
'''


class SendersPage:
    def __init__(self, actor: Actor, status: str, channel: str, search: str) -> None:
        self.actor = actor
        self.filters = {'status': enum_or_none(SenderStatus, status), 'channel': enum_or_none(Channel, channel),
                        'search': search}
        with ui.row().classes('w-full items-center gap-4'):
            ui.select({None: 'Any status', **{s.value: s.value.capitalize() for s in SenderStatus}}, label='Status',
                      value=self.filters['status'] and self.filters['status'].value,
                      on_change=lambda e: self.set_filter('status', enum_or_none(SenderStatus, e.value))) \
                .classes('w-40')
            ui.select({None: 'Any channel', **_CHANNELS}, label='Channel',
                      value=self.filters['channel'] and self.filters['channel'].value,
                      on_change=lambda e: self.set_filter('channel', enum_or_none(Channel, e.value))).classes('w-40')
            ui.input('Search', value=search, on_change=lambda e: self.set_filter('search', e.value or '')) \
                .props('clearable debounce=400').classes('w-64')
            ui.space()
            if actor.can(Permission.REQUEST_SENDER):
                ui.button('Request sender name', icon='add', on_click=self.request)
        columns = [column('name', 'Name', True), column('channel', 'Channel', True), column('status', 'Status', True),
                   {**column('comment', 'Comment'), 'style': 'white-space: normal; min-width: 12rem'},
                   column('requested_by', 'Requested by'), time_column('decided_at', 'Decided at')]
        if actor.can(Permission.DECIDE_SENDER):
            columns.append({**column('actions', ''), 'align': 'right'})
        self.table = ServerTable(columns, self.fetch, sort_by='created_at', descending=True)
        self.table.table.add_slot('body-cell-status', _STATUS_BADGE)
        if actor.can(Permission.DECIDE_SENDER):
            self.table.table.add_slot('body-cell-actions', _ACTIONS)
            self.table.table.on('approve', lambda e: self.decide(e.args, approve=True))
            self.table.table.on('reject', lambda e: self.decide(e.args, approve=False))
            self.table.table.on('delete', lambda e: self.delete(e.args))

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        total, rows = await senders.list_senders(self.actor, self.filters['status'], self.filters['channel'],
                                                 self.filters['search'], sort, descending, offset, limit)
        return total, [_row(sender) for sender in rows]

    async def set_filter(self, key: str, value: Any) -> None:
        self.filters[key] = value
        set_query('/settings/senders', {k: v.value if isinstance(v, Enum) else v for k, v in self.filters.items()})
        await self.table.load({'page': 1})

    async def request(self) -> None:
        with ui.dialog() as dialog, ui.card().classes('w-96'):
            ui.label('Request a sender name').classes('text-h6')
            ui.label('Register the name with your carriers first; an admin then approves it here.') \
                .classes('text-grey-7')
            name = ui.input('Sender name').classes('w-full').props('autofocus')
            channel = ui.select(_CHANNELS, label='Channel', value=Channel.SMS.value).classes('w-full')
            comment = ui.textarea('Comment').classes('w-full')

            async def submit() -> None:
                action = senders.request_sender(self.actor, name.value or '', channel.value, comment.value or '')
                if await attempt(action, {'name': name, 'channel': channel, 'comment': comment}):
                    dialog.submit(True)
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=dialog.close).props('flat')
                ui.button('Submit request', on_click=submit)
        requested = await dialog
        dialog.delete()
        if requested:
            ui.notify(f'Requested "{name.value.strip()}" for {_CHANNELS[channel.value]}.', type='positive')
            await self.table.load()

    async def decide(self, row: dict[str, Any], approve: bool) -> None:
        verb, done = ('Approve', 'approved') if approve else ('Reject', 'rejected')
        with ui.dialog() as dialog, ui.card().classes('w-96'):
            ui.label(f'{verb} "{row["name"]}"?').classes('text-h6')
            comment = ui.textarea('Comment' if approve else 'Comment (required: say why)').classes('w-full')

            async def submit() -> None:
                if await attempt(senders.decide_sender(self.actor, row['id'], approve, comment.value or ''),
                                 {'comment': comment}):
                    dialog.submit(True)
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=dialog.close).props('flat')
                ui.button(verb, color='positive' if approve else 'negative', on_click=submit)
        decided = await dialog
        dialog.delete()
        if decided:
            ui.notify(f'"{row["name"]}" {done}.', type='positive')
        await self.table.load()

    async def delete(self, row: dict[str, Any]) -> None:
        if not await confirm(f'Delete the sender name "{row["name"]}"? Templates can no longer use it.', 'Delete'):
            return
        if await attempt(senders.delete_sender(self.actor, row['id'])):
            ui.notify(f'"{row["name"]}" deleted.', type='positive')
        await self.table.load()


def create() -> None:
    @ui.page('/settings/senders')
    async def senders_page(status: str = '', channel: str = '', search: str = '') -> None:
        actor = await page_frame('Sender names')
        if not actor:
            return
        page = SendersPage(actor, status, channel, search)
        await page.table.load()
