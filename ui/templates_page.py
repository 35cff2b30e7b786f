"""The Templates page: search by name or id, a server-side paged and sorted list, edit and delete."""
from __future__ import annotations

from typing import Any

from nicegui import events, ui

from domain import templates
from domain.auth import Actor, Permission
from domain.models import Template

from .forms import attempt, confirm
from .frame import page_frame
from .tables import ServerTable, column, iso, set_query, time_column

COLUMNS = [
    column('name', 'Name', sortable=True),
    column('channels', 'Channels'),
    column('schedule', 'Sending time'),
    time_column('created_at', 'Created'),
    time_column('updated_at', 'Updated'),
    {**column('actions', ''), 'field': 'id', 'align': 'right'},
]
EDIT_BUTTON = ('<q-btn flat round dense icon="edit" aria-label="Edit" :href="\'/templates/\' + props.row.id">'
               '<q-tooltip>Edit</q-tooltip></q-btn>')
SEND_BUTTON = ('<q-btn flat round dense icon="send" aria-label="Send" :href="\'/send?template=\' + props.row.id">'
               '<q-tooltip>Send notification</q-tooltip></q-btn>')
DELETE_BUTTON = ('<q-btn flat round dense icon="delete" color="negative" aria-label="Delete" '
                 '@click="() => $parent.$emit(\'delete\', props.row)"><q-tooltip>Delete</q-tooltip></q-btn>')


def create() -> None:
    @ui.page('/templates')
    async def templates_page(search: str = '', sort: str = 'created_at', desc: bool = True, page: int = 1) -> None:
        actor = await page_frame('Templates')
        if actor:
            await TemplateList(actor, search, sort, desc, page).table.load()


def _row(template: Template) -> dict[str, Any]:
    return {'id': str(template.id), 'name': template.name, 'channels': templates.cascade_label(template.steps),
            'schedule': templates.schedule_label(template), 'created_at': iso(template.created_at),
            'updated_at': iso(template.updated_at)}


class TemplateList:
    def __init__(self, actor: Actor, search: str, sort: str, descending: bool, page: int) -> None:
        self.actor = actor
        self.can_manage = actor.can(Permission.MANAGE_TEMPLATES)
        with ui.row().classes('w-full items-center gap-2'):
            if self.can_manage:
                ui.button('Create a notification template', icon='add',
                          on_click=lambda: ui.navigate.to('/templates/new'))
            ui.space()
            self.search_input = ui.input('Search by name or ID', value=search, on_change=self._on_search) \
                .props('debounce=300').classes('w-80').mark('search')
            with self.search_input.add_slot('prepend'):
                ui.icon('search')
            ui.button('Clear', on_click=lambda: self.search_input.set_value('')).props('flat')
        self.table = ServerTable(COLUMNS, self.fetch, sort_by=sort if sort in templates.SORTABLE else 'created_at',
                                 descending=descending, page=page, on_loaded=self._remember_in_url)
        actions = ((SEND_BUTTON if actor.can(Permission.SEND) else '') + EDIT_BUTTON
                   + (DELETE_BUTTON if self.can_manage else ''))
        self.table.table.add_slot('body-cell-actions', f'<q-td :props="props" auto-width>{actions}</q-td>')
        self.table.table.on('delete', self._delete)
        self.empty = ui.label().classes('text-grey-7')

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        total, rows = await templates.search_templates(self.actor, self.search, sort or 'created_at', descending,
                                                       offset, limit)
        self.empty.text = 'No templates match your search.' if self.search else 'There are no templates yet.'
        self.empty.set_visibility(total == 0)
        return total, [_row(t) for t in rows]

    @property
    def search(self) -> str:
        return self.search_input.value or ''

    def _remember_in_url(self, pagination: dict[str, Any]) -> None:
        set_query('/templates', {'search': self.search, 'sort': pagination['sortBy'],
                                 'desc': str(bool(pagination['descending'])).lower(), 'page': str(pagination['page'])})

    async def _on_search(self) -> None:
        await self.table.load({'page': 1})

    async def _delete(self, event: events.GenericEventArguments) -> None:
        row = event.args
        if not await confirm(f'Delete the template “{row["name"]}”? This cannot be undone.', 'Delete'):
            return
        if await attempt(templates.delete_template(self.actor, row['id'])):
            ui.notify(f'Template “{row["name"]}” deleted.')
        await self.table.load()
