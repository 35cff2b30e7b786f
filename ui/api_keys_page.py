"""Settings → API keys: admins create keys (the secret is shown once), see when they were last used, and revoke them."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import auth
from domain.auth import Actor, Permission, Scope
from domain.models import ApiKey

from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .tables import column, iso, time_column

_STATUS_CELL = '''
<q-td :props="props">
  <q-badge :color="props.value === 'active' ? 'positive' : 'grey-6'" :label="props.value" />
</q-td>
'''
_REVOKE_CELL = '''
<q-td :props="props" auto-width>
  <q-btn flat dense round color="negative" icon="block" aria-label="Revoke" :disable="props.row.status !== 'active'"
         @click="() => $parent.$emit('revoke', props.row)">
    <q-tooltip>Revoke</q-tooltip>
  </q-btn>
</q-td>
'''


def scopes_text(key: ApiKey) -> str:
    scopes = auth.key_scopes(key)
    return 'All' if scopes == frozenset(Scope) else ', '.join(s.label for s in Scope if s in scopes) or 'None'


class ApiKeysPage:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        with ui.row().classes('w-full items-center'):
            ui.label('Clients send a key as "Authorization: Bearer <key>".').classes('text-grey-7')
            ui.link('API documentation', '/api/docs', new_tab=True)
            ui.space()
            ui.button('New API key', icon='key', on_click=self.add)
        columns = [column('name', 'Name', True), column('prefix', 'Key starts with'), column('scopes', 'Scopes'),
                   {**column('rate_limit', 'Requests a minute', True), 'align': 'right'},
                   time_column('created_at', 'Created'), column('created_by', 'Created by', True),
                   time_column('last_used_at', 'Last used'), column('status', 'Status', True),
                   {**column('actions', ''), 'align': 'right'}]
        self.table = ui.table(columns=columns, rows=[], row_key='id',
                              pagination={'rowsPerPage': 20, 'sortBy': 'created_at', 'descending': True}) \
            .classes('w-full')
        self.table.add_slot('body-cell-status', _STATUS_CELL)
        self.table.add_slot('body-cell-actions', _REVOKE_CELL)
        self.table.on('revoke', lambda e: self.revoke(e.args))

    @staticmethod
    def _row(key: ApiKey) -> dict[str, Any]:
        return {'id': key.id, 'name': key.name, 'prefix': f'{key.prefix}…', 'scopes': scopes_text(key),
                'rate_limit': key.rate_limit_per_minute, 'created_at': iso(key.created_at),
                'created_by': key.created_by.email if key.created_by else 'system',
                'last_used_at': iso(key.last_used_at), 'status': 'revoked' if key.revoked_at else 'active'}

    async def load(self) -> None:
        self.table.rows = [self._row(key) for key in await auth.list_api_keys(self.actor)]

    async def add(self) -> None:
        created: list[str] = []

        async def create() -> None:
            chosen = [scope for scope, box in boxes.items() if box.value]
            _, secret = await auth.create_api_key(name.value or '', chosen, int(rate.value or 0), actor=self.actor)
            created.append(secret)

        with FormDialog('New API key', 'Create key') as form:
            name = ui.input('Name', placeholder='e.g. CRM').props('autocomplete=off autofocus').classes('w-full')
            ui.label('Scopes').classes('text-subtitle2 mt-2')
            boxes = {scope: ui.checkbox(scope.label, value=True) for scope in Scope}
            rate = ui.number('Requests a minute', value=auth.DEFAULT_RATE_LIMIT, min=1, max=auth.MAX_RATE_LIMIT,
                             precision=0).classes('w-full')
        if await form.run(create, {'name': name, 'rate_limit_per_minute': rate}):
            await self.load()
            await self.show_secret(name.value.strip(), created[-1])

    @staticmethod
    async def show_secret(name: str, secret: str) -> None:
        with ui.dialog().props('persistent') as dialog, ui.card().classes('w-[36rem] max-w-full'):
            ui.label(f'API key "{name}" created').classes('text-h6')
            with ui.row().classes('items-center gap-2 no-wrap'):
                ui.icon('warning', color='warning')
                ui.label('Copy the key now: it is not stored and will not be shown again.')
            with ui.row().classes('w-full items-center no-wrap'):
                ui.label(secret).classes('font-mono break-all grow').mark('secret')
                ui.button(icon='content_copy', on_click=lambda: (ui.clipboard.write(secret), ui.notify('Copied.'))) \
                    .props('flat round aria-label="Copy"').tooltip('Copy')
            with ui.row().classes('w-full justify-end'):
                ui.button('Done', on_click=dialog.submit)
        await dialog
        dialog.delete()

    async def revoke(self, row: dict[str, Any]) -> None:
        if await confirm(f'Revoke the API key "{row["name"]}"? Clients using it are refused at once; '
                         'this cannot be undone.', 'Revoke'):
            if await attempt(auth.revoke_api_key(self.actor, row['id'])):
                ui.notify(f'Revoked "{row["name"]}".', type='positive')
            await self.load()


def create() -> None:
    @ui.page('/settings/api-keys')
    async def api_keys_page() -> None:
        actor = await page_frame('API keys', Permission.MANAGE_SETTINGS)
        if not actor:
            return
        await ApiKeysPage(actor).load()
