"""Settings → Users: admins add users, change roles, (de)activate them, reset passwords and delete them."""
from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from nicegui import ui

from domain import users
from domain.auth import Actor, Permission
from domain.models import Role, User

from . import session
from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .tables import column, iso, time_column

_ROLES = {role.value: role.value.capitalize() for role in Role}
_ROLE_OPTIONS = json.dumps([{'value': value, 'label': label} for value, label in _ROLES.items()])
_ROLE_CELL = f'''
<q-td :props="props">
  <q-select dense borderless emit-value map-options :options='{_ROLE_OPTIONS}' :model-value="props.value"
            :disable="props.row.me" aria-label="Role"
            @update:model-value="value => $parent.$emit('role', {{id: props.row.id, role: value}})" />
</q-td>
'''
_ACTIVE_CELL = '''
<q-td :props="props">
  <q-toggle :model-value="props.value" :disable="props.row.me" aria-label="Active"
            @update:model-value="value => $parent.$emit('active', {id: props.row.id, active: value})" />
</q-td>
'''
_ACTIONS_CELL = '''
<q-td :props="props" auto-width>
  <q-btn flat dense round icon="lock_reset" aria-label="Reset password"
         @click="() => $parent.$emit('reset', props.row)">
    <q-tooltip>Reset password</q-tooltip>
  </q-btn>
  <q-btn flat dense round color="grey-7" icon="delete" aria-label="Delete" :disable="props.row.me"
         @click="() => $parent.$emit('delete', props.row)" />
</q-td>
'''


class UsersPage:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        with ui.row().classes('w-full'):
            ui.space()
            ui.button('Add user', icon='person_add', on_click=self.add)
        columns = [column('email', 'Email', True), column('name', 'Name', True), column('role', 'Role', True),
                   column('is_active', 'Active', True), time_column('created_at', 'Created'),
                   time_column('last_login_at', 'Last sign-in'),
                   {**column('actions', ''), 'align': 'right'}]
        self.table = ui.table(columns=columns, rows=[], row_key='id',
                              pagination={'rowsPerPage': 20, 'sortBy': 'email'}).classes('w-full')
        self.table.add_slot('body-cell-role', _ROLE_CELL)
        self.table.add_slot('body-cell-is_active', _ACTIVE_CELL)
        self.table.add_slot('body-cell-actions', _ACTIONS_CELL)
        self.table.on('role', lambda e: self.change(users.change_role(actor, e.args['id'], e.args['role'])))
        self.table.on('active', lambda e: self.change(users.set_active(actor, e.args['id'], e.args['active'])))
        self.table.on('reset', lambda e: self.reset_password(e.args))
        self.table.on('delete', lambda e: self.delete(e.args))

    def _row(self, user: User) -> dict[str, Any]:
        return {'id': user.id, 'email': user.email, 'name': user.name, 'role': user.role.value,
                'is_active': user.is_active, 'created_at': iso(user.created_at),
                'last_login_at': iso(user.last_login_at), 'me': user.id == self.actor.user_id}

    async def load(self) -> None:
        self.table.rows = [self._row(user) for user in await users.list_users(self.actor)]

    async def change(self, action: Awaitable[Any]) -> None:
        if await attempt(action):
            ui.notify('Saved.', type='positive')
        await self.load()

    async def add(self) -> None:
        with FormDialog('Add a user', 'Create user') as form:
            email = ui.input('Email').props('autocomplete=off autofocus').classes('w-full')
            name = ui.input('Name').classes('w-full')
            role = ui.select(_ROLES, label='Role', value=Role.OPERATOR.value).classes('w-full')
            password = ui.input('Password', password=True, password_toggle_button=True) \
                .props('autocomplete=new-password').classes('w-full')
        if await form.run(lambda: users.add_user(self.actor, email.value or '', password.value or '', role.value,
                                                 name.value or ''),
                          {'email': email, 'password': password, 'role': role}):
            ui.notify(f'Added {email.value.strip().lower()}.', type='positive')
            await self.load()

    async def reset_password(self, row: dict[str, Any]) -> None:
        with FormDialog(f'New password for {row["email"]}', 'Set password',
                        note='Their open sessions end; tell them the new password.') as form:
            password = ui.input('New password', password=True, password_toggle_button=True) \
                .props('autocomplete=new-password autofocus').classes('w-full')
        if await form.run(lambda: self._reset(row['id'], password.value or ''), {'password': password}):
            ui.notify(f'The password of {row["email"]} is reset.', type='positive')

    async def _reset(self, user_id: int, password: str) -> None:
        user = await users.reset_password(self.actor, user_id, password)
        if user.id == self.actor.user_id:  # keep this session: only the others end
            session.sign_in(user)

    async def delete(self, row: dict[str, Any]) -> None:
        if await confirm(f'Delete the user {row["email"]}? This cannot be undone; '
                         'deactivating keeps their history.', 'Delete'):
            if await attempt(users.delete_user(self.actor, row['id'])):
                ui.notify(f'Deleted {row["email"]}.', type='positive')
            await self.load()


def create() -> None:
    @ui.page('/settings/users')
    async def users_page() -> None:
        actor = await page_frame('Users', Permission.MANAGE_USERS)
        if not actor:
            return
        await UsersPage(actor).load()
