"""The Templates page: search by name or id, a server-side paged and sorted list, edit and delete."""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from nicegui import events, ui

from domain import templates
from domain.auth import Actor, Permission
from domain.errors import HeraldError
from domain.models import Template

from .frame import page_frame

PAGE_SIZE = 20
LOCAL_TIME = 'value => value ? new Date(value).toLocaleString() : ""'
COLUMNS = [
    {'name': 'name', 'label': 'Name', 'field': 'name', 'sortable': True, 'align': 'left'},
    {'name': 'channels', 'label': 'Channels', 'field': 'channels', 'align': 'left'},
    {'name': 'schedule', 'label': 'Sending time', 'field': 'schedule', 'align': 'left'},
    {'name': 'created_at', 'label': 'Created', 'field': 'created_at', 'sortable': True, 'align': 'left',
     ':format': LOCAL_TIME},
    {'name': 'updated_at', 'label': 'Updated', 'field': 'updated_at', 'sortable': True, 'align': 'left',
     ':format': LOCAL_TIME},
    {'name': 'actions', 'label': '', 'field': 'id', 'align': 'right'},
]
EDIT_BUTTON = ('<q-btn flat round dense icon="edit" aria-label="Edit" :href="\'/templates/\' + props.row.id">'
               '<q-tooltip>Edit</q-tooltip></q-btn>')
DELETE_BUTTON = ('<q-btn flat round dense icon="delete" color="negative" aria-label="Delete" '
                 '@click="() => $parent.$emit(\'delete\', props.row)"><q-tooltip>Delete</q-tooltip></q-btn>')


def create() -> None:
    @ui.page('/templates')
    async def templates_page(search: str = '', sort: str = 'created_at', desc: bool = True, page: int = 1) -> None:
        actor = await page_frame('Templates')
        if actor:
            await TemplateList(actor, search, sort, desc, page).build()


def _row(template: Template) -> dict[str, Any]:
    return {'id': str(template.id), 'name': template.name, 'channels': templates.cascade_label(template.steps),
            'schedule': templates.schedule_label(template), 'created_at': template.created_at.isoformat(),
            'updated_at': template.updated_at.isoformat()}


class TemplateList:
    def __init__(self, actor: Actor, search: str, sort: str, descending: bool, page: int) -> None:
        self.actor = actor
        self.can_manage = actor.can(Permission.MANAGE_TEMPLATES)
        self.sort = sort if sort in templates.SORTABLE else 'created_at'
        self.descending = descending
        self.page = max(page, 1)
        self.search = search

    async def build(self) -> None:
        with ui.row().classes('w-full items-center gap-2'):
            if self.can_manage:
                ui.button('Create a notification template', icon='add',
                          on_click=lambda: ui.navigate.to('/templates/new'))
            ui.space()
            self.search_input = ui.input('Search by name or ID', value=self.search, on_change=self._on_search) \
                .props('debounce=300').classes('w-80').mark('search')
            with self.search_input.add_slot('prepend'):
                ui.icon('search')
            ui.button('Clear', on_click=lambda: self.search_input.set_value('')).props('flat')
        self.table = ui.table(columns=COLUMNS, rows=[], row_key='id', pagination={
            'rowsPerPage': PAGE_SIZE, 'page': self.page, 'sortBy': self.sort, 'descending': self.descending,
            'rowsNumber': 0}).classes('w-full').props(f':rows-per-page-options="[{PAGE_SIZE}]"')
        actions = EDIT_BUTTON + (DELETE_BUTTON if self.can_manage else '')
        self.table.add_slot('body-cell-actions', f'<q-td :props="props" auto-width>{actions}</q-td>')
        self.table.on('request', self._on_request)
        self.table.on('delete', self._confirm_delete)
        self.empty = ui.label().classes('text-grey-7')
        self._delete_dialog()
        await self.load()

    def _delete_dialog(self) -> None:
        with ui.dialog() as self.dialog, ui.card():
            self.dialog_text = ui.label()
            ui.label('This cannot be undone.').classes('text-grey-7')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: self.dialog.submit(False)).props('flat')
                ui.button('Delete', color='negative', on_click=lambda: self.dialog.submit(True)).mark('confirm-delete')

    async def load(self) -> None:
        self.search = self.search_input.value or ''
        total, rows = await templates.search_templates(self.actor, self.search, self.sort, self.descending,
                                                       (self.page - 1) * PAGE_SIZE, PAGE_SIZE)
        if not rows and self.page > 1 and total:
            self.page = math.ceil(total / PAGE_SIZE)
            await self.load()
            return
        self.table.rows = [_row(t) for t in rows]
        self.table.pagination = {'rowsPerPage': PAGE_SIZE, 'page': self.page, 'sortBy': self.sort,
                                 'descending': self.descending, 'rowsNumber': total}
        self.empty.text = 'No templates match your search.' if self.search else 'There are no templates yet.'
        self.empty.set_visibility(total == 0)
        query = {'search': self.search, 'sort': self.sort, 'desc': str(self.descending).lower(), 'page': self.page}
        ui.navigate.history.replace(f'/templates?{urlencode(query)}')

    async def _on_search(self) -> None:
        self.page = 1
        await self.load()

    async def _on_request(self, event: events.GenericEventArguments) -> None:
        pagination = event.args['pagination']
        self.sort = pagination.get('sortBy') or 'created_at'
        self.descending = bool(pagination.get('descending')) if pagination.get('sortBy') else True
        self.page = int(pagination.get('page') or 1)
        await self.load()

    async def _confirm_delete(self, event: events.GenericEventArguments) -> None:
        row = event.args
        self.dialog_text.text = f'Delete the template “{row["name"]}”?'
        if not await self.dialog:
            return
        try:
            await templates.delete_template(self.actor, row['id'])
        except HeraldError as error:
            ui.notify(str(error), type='negative')
        else:
            ui.notify(f'Template “{row["name"]}” deleted.')
        await self.load()
