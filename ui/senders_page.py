"""Settings → Sender names: operators request names, admins approve or reject them."""
from __future__ import annotations

from enum import Enum
from typing import Any

from nicegui import ui

from domain import senders
from domain.auth import Actor, Permission
from domain.channels import SENDER_CHANNELS, Channel
from domain.models import SenderName, SenderStatus

from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .tables import ServerTable, column, enum_or_none, iso, set_query, time_column


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
        with FormDialog('Request a sender name', 'Submit request',
                        note='Register the name with your carriers first; an admin then approves it here.') as form:
            name = ui.input('Sender name').classes('w-full').props('autofocus')
            channel = ui.select(_CHANNELS, label='Channel', value=Channel.SMS.value).classes('w-full')
            comment = ui.textarea('Comment').classes('w-full')
        if await form.run(lambda: senders.request_sender(self.actor, name.value or '', channel.value,
                                                         comment.value or ''),
                          {'name': name, 'channel': channel, 'comment': comment}):
            ui.notify(f'Requested "{name.value.strip()}" for {_CHANNELS[channel.value]}.', type='positive')
            await self.table.load()

    async def decide(self, row: dict[str, Any], approve: bool) -> None:
        verb, done = ('Approve', 'approved') if approve else ('Reject', 'rejected')
        with FormDialog(f'{verb} "{row["name"]}"?', verb, submit_color='positive' if approve else 'negative') as form:
            comment = ui.textarea('Comment' if approve else 'Comment (required: say why)').classes('w-full')
        if await form.run(lambda: senders.decide_sender(self.actor, row['id'], approve, comment.value or ''),
                          {'comment': comment}):
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
