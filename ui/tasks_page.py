"""Tasks for notifications (the manual's "Working with notification tasks"): bulk sends from Excel files. The list
with live counters and filters kept in the URL; a task is created from a checked file, edited, started, paused,
resumed, canceled and deleted here."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nicegui import events as ui_events
from nicegui import ui

from domain import events, task_files, tasks, templates
from domain.auth import Actor, Permission
from domain.channels import Channel
from domain.config import settings
from domain.errors import HeraldError, ValidationError
from domain.models import TaskKind
from domain.phones import in_worker
from domain.task_import import FileCheck, check_file
from domain.tasks import Category, TaskFilter, TaskView
from domain.xlsx import MEDIA_TYPE

from . import session
from .forms import TimeRangesEditor, amount, attempt, confirm, money, plural, show_errors
from .frame import page_frame
from .tables import ServerTable, column, day_or_none, enum_or_none, iso, set_query, time_column

PATH = '/tasks'
PAGE_SIZE = 20
REFRESH_SECONDS = 1.0  # at most one live refresh per second and page
SHOWN_PROBLEMS = 100
log = logging.getLogger('herald.tasks_page')
CATEGORIES = {'': 'All', Category.DURING.value: 'During', Category.CREATED.value: 'Created',
              Category.PAUSED.value: 'Paused', Category.COMPLETED.value: 'Completed'}
COUNTERS = (('total', 'Total'), ('processed', 'Processed'), ('in_progress', 'In progress'),
            ('delivered', 'Delivered'), ('failed', 'Failed'))
FLAGS = ('start', 'pause', 'resume', 'cancel', 'edit')  # TaskView.can_<flag>, copied into each row
COLUMNS = [
    column('name', 'Name'),
    column('kind', 'Kind'),
    column('status', 'Status'),
    time_column('created_at', 'Created', sortable=False),
    column('progress', 'Progress'),
    *(column(name, label) for name, label in COUNTERS),
    {**column('actions', ''), 'field': 'id', 'align': 'right'},
]
STATUS_CELL = '''
<q-td :props="props">
  <q-badge :color="{running: 'primary', paused: 'warning', completed: 'positive', canceled: 'grey',
                    failed: 'negative'}[props.row.state] || 'blue-grey'" :label="props.value" />
</q-td>
'''
PROGRESS_CELL = '''
<q-td :props="props" style="min-width: 9rem">
  <q-linear-progress :value="props.row.progress" size="18px" rounded color="positive" track-color="grey-4">
    <div class="absolute-full flex flex-center text-caption text-black">
      {{ Math.floor(props.row.progress * 100) }}%
    </div>
  </q-linear-progress>
</q-td>
'''


def _action(event: str, icon: str, label: str, flag: str | None = None, color: str = '') -> str:
    """A row button that emits `event` with the row; shown only while the row's `can_<flag>` holds."""
    shown = f'v-if="props.row.can_{flag}"' if flag else ''
    return (f'<q-btn {shown} flat dense round icon="{icon}" {color} aria-label="{label}" '
            f'@click.stop="() => $parent.$emit(\'{event}\', props.row)"><q-tooltip>{label}</q-tooltip></q-btn>')


ACTIONS_CELL = '<q-td :props="props" auto-width>' + ''.join((
    _action('start', 'play_arrow', 'Start', 'start', 'color="positive"'),
    _action('pause', 'pause', 'Pause', 'pause'),
    _action('resume', 'play_arrow', 'Resume', 'resume', 'color="positive"'),
    _action('cancel', 'block', 'Cancel', 'cancel'),
    _action('edit', 'edit', 'Edit', 'edit'),
    _action('delete', 'delete', 'Delete', None, 'color="negative"'),
)) + '</q-td>'


def create() -> None:
    @ui.page(PATH)
    async def tasks_page(name: str = '', date: str = '', category: str = '', page: int = 1) -> None:
        actor = await page_frame('Tasks for notifications')
        if actor:
            filters = TaskFilter(name, day_or_none(date), enum_or_none(Category, category), session.browser_zone())
            await TaskList(actor, filters, page).table.load()


def _row(task: TaskView) -> dict[str, Any]:
    counts = task.counts
    return {'id': task.id, 'name': task.name, 'kind': task.kind_label, 'status': task.status_label,
            'state': task.status.value, 'created_at': iso(task.created_at), 'progress': round(counts.progress, 4),
            **{name: getattr(counts, name) for name, _ in COUNTERS},
            **{f'can_{flag}': getattr(task, f'can_{flag}') for flag in FLAGS}}


class TaskList:
    def __init__(self, actor: Actor, filters: TaskFilter, page: int) -> None:
        self.actor = actor
        self.can_send = actor.can(Permission.SEND)
        self.filters = filters
        self.category = filters.category
        self._toolbar()
        self.table = ServerTable(COLUMNS if self.can_send else COLUMNS[:-1], self.fetch, page=page,
                                 rows_per_page=PAGE_SIZE, on_loaded=self._remember_in_url)
        table = self.table.table
        table.props(f':rows-per-page-options="[{PAGE_SIZE}]" dense').classes('cursor-pointer').mark('tasks')
        table.add_slot('body-cell-status', STATUS_CELL)
        table.add_slot('body-cell-progress', PROGRESS_CELL)
        table.on('rowClick', lambda e: self.edit(e.args[1]))
        if self.can_send:
            table.add_slot('body-cell-actions', ACTIONS_CELL)
            self._on_actions()
        self.empty = ui.label().classes('text-grey-7').mark('empty')
        self.stale = False  # something shown may have changed: the next timer tick reloads the page of tasks
        self.watching = False  # a shown task has messages not ended: their status changes move its counters
        unsubscribe = (events.subscribe_tasks(self._task_changed), events.subscribe(self._messages_changed))
        ui.context.client.on_delete(lambda: [stop() for stop in unsubscribe])
        ui.timer(REFRESH_SECONDS, self._refresh)

    # --- filters ---

    def _toolbar(self) -> None:
        if self.can_send:
            ui.button('Add new message sending task', icon='add', on_click=self.add).mark('add-task')
        with ui.row().classes('w-full items-center gap-2'):
            self.name_input = ui.input('Search by name', value=self.filters.name, on_change=self._apply) \
                .props('debounce=300 clearable').classes('w-64').mark('name')
            with self.name_input.add_slot('prepend'):
                ui.icon('search')
            self.date_input = _date_input(self.filters.created_on.isoformat() if self.filters.created_on else '',
                                          self._apply)
            ui.button('Clear', on_click=self._clear).props('flat').mark('clear')
            ui.space()
            self.chips = {value: ui.chip(label, on_click=lambda value=value: self._choose(value))
                          .mark(f'category-{value or "all"}') for value, label in CATEGORIES.items()}
        self._paint_chips()

    def _paint_chips(self) -> None:
        chosen = self.category.value if self.category else ''
        for value, chip in self.chips.items():
            if value == chosen:
                chip.props(remove='outline').props('color=primary text-color=white')
            else:
                chip.props('outline color=primary text-color=primary')

    async def _choose(self, value: str) -> None:
        self.category = enum_or_none(Category, value)
        self._paint_chips()
        await self._apply()

    def _current(self) -> TaskFilter:
        return TaskFilter(self.name_input.value or '', day_or_none((self.date_input.value or '').strip()),
                          self.category, self.filters.zone)

    async def _apply(self) -> None:
        await self.table.load({'page': 1})

    async def _clear(self) -> None:
        self.category = None
        self._paint_chips()
        for element in (self.name_input, self.date_input):
            element.set_value('')  # each change reloads; the last one sees every field cleared
        await self._apply()

    def _remember_in_url(self, pagination: dict[str, Any]) -> None:
        filters = self.filters
        set_query(PATH, {'name': filters.name, 'date': filters.created_on.isoformat() if filters.created_on else '',
                         'category': filters.category.value if filters.category else '',
                         'page': str(pagination['page']) if pagination['page'] > 1 else ''})

    # --- the list, live ---

    async def fetch(self, offset: int, limit: int, _sort: str | None, _descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        self.filters = self._current()
        total, views = await tasks.list_tasks(self.actor, self.filters, offset, limit)
        filtered = self.filters.name.strip() or self.filters.created_on or self.filters.category
        self.empty.text = 'No tasks match the filters.' if filtered else 'There are no tasks yet.'
        self.empty.set_visibility(total == 0)
        rows = [_row(view) for view in views]
        self.watching = any(row['processed'] < row['total'] for row in rows)
        return total, rows

    def _task_changed(self, _event: events.TaskChanged) -> None:
        self.stale = True

    def _messages_changed(self, _changes: list[events.MessageChanged]) -> None:
        """Runs on the dispatcher's path: only note it; `_refresh` reloads at most once a second."""
        if self.watching:
            self.stale = True

    async def _refresh(self) -> None:
        if self.stale:
            self.stale = False
            await self.table.load()

    # --- actions ---

    def _on_actions(self) -> None:
        table = self.table.table
        for event, run, done in (('start', tasks.start_task, 'started'), ('pause', tasks.pause_task, 'paused'),
                                 ('resume', tasks.resume_task, 'resumed')):
            table.on(event, lambda e, run=run, done=done: self._act(e.args, run, done))
        table.on('cancel', lambda e: self._cancel(e.args))
        table.on('edit', lambda e: self.edit(e.args))
        table.on('delete', lambda e: self._delete(e.args))

    async def _act(self, row: dict[str, Any], run: Callable[[Actor, str], Awaitable[Any]], done: str) -> None:
        if await attempt(run(self.actor, row['id'])):
            ui.notify(f'Task “{row["name"]}” {done}.')
        await self.table.load()

    async def _cancel(self, row: dict[str, Any]) -> None:
        if await confirm(f'Cancel the task “{row["name"]}”? Its messages not yet sent will not be sent.',
                         'Cancel task'):
            await self._act(row, tasks.cancel_task, 'canceled')

    async def _delete(self, row: dict[str, Any]) -> None:
        try:
            summary = await tasks.deletion_summary(self.actor, row['id'])
        except HeraldError as error:
            ui.notify(str(error), type='negative')
            return
        stay = 'stays' if summary.kept == 1 else 'stay'
        if await confirm(f'Delete the task “{row["name"]}”? {plural(summary.unsent, "message")} not yet sent will '
                         f'be removed. {plural(summary.kept, "message")} already sent {stay} in the notification '
                         'history.', 'Delete'):
            await self._act(row, tasks.delete_task, 'deleted')

    async def add(self) -> None:
        await NewTaskDialog(self.actor, self.table.load).build()

    async def edit(self, row: dict[str, Any]) -> None:
        try:
            task = await tasks.get_task(self.actor, row['id'])
        except HeraldError as error:
            ui.notify(str(error), type='negative')
            return
        EditTaskDialog(self.actor, task, self.table.load).build()


def _date_input(value: str, on_change: Callable[[], Awaitable[None]]) -> ui.input:
    """A YYYY-MM-DD input with a calendar in a menu."""
    field = ui.input('Creation date', value=value, on_change=on_change).props('debounce=400 clearable') \
        .classes('w-44').mark('date')
    with field.add_slot('append'):
        with ui.icon('event').classes('cursor-pointer'):
            with ui.menu() as menu:
                ui.date(on_change=menu.close).bind_value(field)
    return field


# --- the dialogs -------------------------------------------------------------------------------------------------

Check = Callable[[Path, str], Awaitable[FileCheck]]


class FileSection:
    """The file picker and its check's result; a new upload (or `discard`) throws the previous check away."""

    def __init__(self, check: Check, on_change: Callable[[], None]) -> None:
        self.run_check = check
        self.on_change = on_change
        self.check: FileCheck | None = None
        self.upload = ui.upload(label='Select file (.xlsx)', auto_upload=True, max_file_size=task_files.MAX_FILE_BYTES,
                                on_upload=self._uploaded, on_rejected=self._rejected) \
            .props('accept=.xlsx flat bordered').classes('w-full').mark('file')
        with ui.row().classes('items-center gap-2') as self.busy:
            ui.spinner()
            ui.label('Checking the file…')
        self.busy.set_visibility(False)
        self.error = ui.label().classes('text-negative').mark('file-error')
        self.result = ui.column().classes('w-full gap-1')

    async def _uploaded(self, event: ui_events.UploadEventArguments) -> None:
        directory = settings().data_dir / 'uploads'
        path = directory / f'{uuid.uuid4().hex}.xlsx'
        await event.file.save(path)
        try:
            await self.receive(path, event.file.name)
        finally:
            path.unlink(missing_ok=True)
        if not self.upload.is_deleted:
            self.upload.reset()

    def _rejected(self) -> None:
        self.error.text = f'Choose an .xlsx file of at most {task_files.MAX_FILE_BYTES // 2 ** 20} MB.'

    async def receive(self, path: Path, filename: str) -> None:
        """Check an uploaded file (saved at `path`) and show what it would send."""
        self.discard()
        self._busy(True)
        check, message = None, ''
        try:
            check = await self.run_check(path, filename)
        except ValidationError as error:
            message = ' '.join(error.errors.values())
        except HeraldError as error:
            message = str(error)
        except Exception:  # noqa: BLE001 - said to the user, logged for the admin
            log.exception('Checking the task file %s failed', filename)
            message = 'The file could not be checked: try again, or tell your administrator.'
        if self.upload.is_deleted:  # the dialog or the tab was closed meanwhile
            if check:
                check.discard()
            return
        self._busy(False)
        self.check, self.error.text = check, message
        if check:
            with self.result:
                _check_result(check)
        self.on_change()

    def _busy(self, busy: bool) -> None:
        """One file at a time: the picker rests while a check runs."""
        self.busy.set_visibility(busy)
        self.upload.set_enabled(not busy)

    def discard(self, note: str = '') -> None:
        if self.check:
            self.check.discard()
        self.taken()
        self.error.text = note

    def taken(self) -> None:
        """The check's rows are in a task now: forget it (its files are the task's)."""
        self.check = None
        self.result.clear()
        self.on_change()


def _check_result(check: FileCheck) -> None:
    ui.label(f'Rows in the file: {check.rows:,} · valid: {check.valid:,} · invalid: {len(check.problems):,}') \
        .classes('text-subtitle1').mark('file-summary')
    if check.problems:
        ui.label('Invalid rows' + (f' (the first {SHOWN_PROBLEMS})' if len(check.problems) > SHOWN_PROBLEMS else '')) \
            .classes('text-subtitle2 text-negative')
        ui.table(columns=[column('row', 'Row'), column('column', 'Column'), column('reason', 'Reason')],
                 rows=[{'id': i, 'row': p.row, 'column': p.column, 'reason': p.reason}
                       for i, p in enumerate(check.problems[:SHOWN_PROBLEMS])]) \
            .props('dense flat hide-pagination :rows-per-page-options="[0]"').classes('w-full max-h-64') \
            .mark('problems')
        ui.button('Download invalid rows', icon='download', on_click=lambda: ui.download.file(
            check.problems_file, f'{Path(check.filename).stem}-invalid-rows.xlsx', MEDIA_TYPE)).props('flat')
    if check.preview:
        ui.label('Preview').classes('text-subtitle2')
        ui.table(columns=[column('row', 'Row'), column('channel', 'Channel'), column('recipient', 'Recipient'),
                          column('text', 'Text'), column('parts', 'Parts'), column('cost', 'Cost')],
                 rows=[{'id': i, 'row': p.row, 'channel': p.channel.label, 'recipient': p.recipient, 'text': p.text,
                        'parts': p.parts, 'cost': f'{amount(p.cost)} {p.currency}' if p.currency else '—'}
                       for i, p in enumerate(check.preview)]) \
            .props('dense flat hide-pagination :rows-per-page-options="[0]"').classes('w-full').mark('preview')
    first, fallback = check.tally('first'), check.tally('fallback')
    cost = f'Estimated cost: {money(first)}'
    if fallback.messages:
        cost += f', up to {money(fallback)} more if fallbacks are needed'
    ui.label(cost).classes('text-subtitle1').mark('cost')
    if check.channels:
        ui.label('Messages by channel: ' + ', '.join(f'{Channel(channel).label}: {count:,}'
                                                     for channel, count in sorted(check.channels.items())))
    if unpriced := first.unpriced + fallback.unpriced:
        ui.label(f'{plural(unpriced, "message")} without a tariff: not included in the cost.') \
            .classes('text-caption text-grey-8')
    if check.ignored_columns:
        ui.label('Ignored columns: ' + ', '.join(check.ignored_columns)).classes('text-caption text-grey-8')


class TaskForm:
    """What the new-task and the edit dialogs share: the name, the time limiter and the file section."""

    def __init__(self, actor: Actor, title: str, on_saved: Callable[[], Awaitable[None]]) -> None:
        self.actor = actor
        self.on_saved = on_saved
        self.inputs: dict[str, ui.element] = {}
        self.files: FileSection | None = None
        self.dialog = ui.dialog()
        self.dialog.on_value_change(lambda event: None if event.value else self._closed())
        with self.dialog:
            self.card = ui.card().classes('w-[60rem] max-w-full').mark('task-dialog')
        with self.card:
            ui.label(title).classes('text-h6')

    def _closed(self) -> None:
        if self.files:
            self.files.discard()
        self.dialog.delete()

    def _name(self, value: str, editable: bool) -> None:
        name = ui.input('Task name', value=value).classes('w-full').mark('task-name')
        if not editable:
            name.props('readonly')
        self.inputs['name'] = name

    def _limiter(self, ranges: list[list[str]], zone: str, editable: bool) -> None:
        """The allowed time ranges (none: any time) and their time zone."""
        ui.label('Time limiter for sending text messages').classes('text-subtitle1')
        ui.label('Messages go out only within these times; without a range, at any time.') \
            .classes('text-caption text-grey-8')
        self.limiter = TimeRangesEditor(ranges, editable, minimum=0)
        self.zone = ui.select(templates.time_zones(), label='Time zone', with_input=True, value=zone) \
            .classes('w-80').mark('time-zone')
        if not editable:
            self.zone.props('readonly')
        self.inputs['time_zone'] = self.zone

    @property
    def ranges(self) -> list[list[str]]:
        return [list(pair) for pair in self.limiter.values]

    def errors_at_fields(self, error: ValidationError) -> None:
        show_errors(error, {**self.inputs, **self.limiter.inputs})

    async def _submitted(self, action: Awaitable[TaskView]) -> TaskView | None:
        """The saved task, or None once its errors are shown (at their fields where they have one)."""
        try:
            return await action
        except ValidationError as error:
            self.errors_at_fields(error)
        except HeraldError as error:
            ui.notify(str(error), type='negative')
        return None

    async def saved(self, message: str, close: bool = True) -> None:
        """Say so and reload the list (while the dialog, this handler's context, still exists); close it."""
        ui.notify(message, type='positive')
        await self.on_saved()
        if close:
            self.dialog.close()


class NewTaskDialog(TaskForm):
    def __init__(self, actor: Actor, on_saved: Callable[[], Awaitable[None]]) -> None:
        super().__init__(actor, 'Add new message sending task', on_saved)
        self.kind = TaskKind.SMS

    async def build(self) -> None:
        _, choices = await templates.search_templates(self.actor, '', 'name', False, 0, 500)
        with self.card:
            self._name('', True)
            with ui.row().classes('items-center gap-2'):
                ui.select({kind.value: task_files.LABELS[kind] for kind in TaskKind}, label='Kind of task',
                          value=self.kind.value, on_change=self._kind_changed).classes('w-72').mark('kind')
                ui.label('Excel template:').classes('text-caption')
                for language, label in (('en', 'English'), ('ru', 'Russian')):
                    ui.button(label, icon='download', on_click=lambda language=language: self._template_file(language)) \
                        .props('flat dense no-caps').mark(f'template-{language}')
            self.template = ui.select({str(t.id): t.name for t in choices}, label='Template', with_input=True,
                                      clearable=True, on_change=lambda: self._stale('The template changed')) \
                .classes('w-96').mark('template')
            self.inputs['template'] = self.template
            self._show_template()
            self.short_links = ui.checkbox('Shorten links (SMS, Viber)',
                                           on_change=lambda: self._stale('The link shortening changed')) \
                .mark('use-short-links')
            self._limiter([], session.browser_zone(), True)
            self.files = FileSection(self._check, self._update_buttons)
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.dialog.close).props('flat').mark('cancel-task')
                self.create_button = ui.button('Create task', on_click=self._create).mark('create-task')
        self._update_buttons()
        self.dialog.open()

    def _show_template(self) -> None:
        use = task_files.TEMPLATE_USE[self.kind]
        self.template.set_visibility(use != 'none')
        self.template.label = 'Template' if use == 'required' else 'Template (optional)'

    def _kind_changed(self, event: ui_events.ValueChangeEventArguments) -> None:
        self.kind = TaskKind(event.value)
        self._show_template()
        self._stale('The kind of task changed')

    def _stale(self, what: str) -> None:
        if self.files and self.files.check:
            self.files.discard(f'{what}: select the file again.')

    async def _template_file(self, language: str) -> None:
        content = await in_worker(task_files.template_workbook, self.kind, language)
        ui.download.content(content, task_files.template_filename(self.kind, language), MEDIA_TYPE)

    async def _check(self, path: Path, filename: str) -> FileCheck:
        template_id = self.template.value if task_files.TEMPLATE_USE[self.kind] != 'none' else None
        try:
            return await check_file(self.actor, self.kind, path, filename, template_id or None,
                                    time_zone=self.zone.value or '', use_short_links=self.short_links.value)
        except ValidationError as error:
            if 'template' in error.errors and not self.template.is_deleted:
                self.errors_at_fields(error)
            raise

    def _update_buttons(self) -> None:
        check = self.files.check if self.files else None
        self.create_button.set_enabled(bool(check and check.valid))

    async def _create(self) -> None:
        assert self.files and self.files.check
        self.create_button.props('loading')
        try:
            task = await self._submitted(tasks.create_task(self.actor, self.files.check, self.inputs['name'].value,
                                                           self.ranges, self.zone.value or ''))
        finally:
            self.create_button.props(remove='loading')
        if task is None:
            return
        self.files.taken()
        await self.saved(f'Task “{task.name}” created: {plural(task.counts.total, "message")}. Start it when ready.')


class EditTaskDialog(TaskForm):
    def __init__(self, actor: Actor, task: TaskView, on_saved: Callable[[], Awaitable[None]]) -> None:
        super().__init__(actor, 'Change message sending task', on_saved)
        self.task = task
        self.editable = actor.can(Permission.SEND) and task.can_edit

    def build(self) -> None:
        task = self.task
        with self.card:
            ui.label(f'{task.kind_label} · {task.status_label} · {plural(task.counts.total, "message")}'
                     + (f' · template “{task.template_name}”' if task.template_name else '')
                     + (f' · from {task.source_filename}' if task.source_filename else '')) \
                .classes('text-grey-8').mark('task-info')
            ui.link('Show its messages in the notification history', f'/history?task={task.id}&from=all') \
                .mark('task-messages')
            self._name(task.name, self.editable)
            self._limiter(task.allowed_time_ranges, task.time_zone, self.editable)
            if self.editable:
                ui.label('Add rows from another file').classes('text-subtitle1')
                self.files = FileSection(self._check, self._update_buttons)
                self.add_button = ui.button('Add rows', icon='playlist_add', on_click=self._add_rows) \
                    .mark('add-rows')
            else:
                ui.label(f'The task is {task.status_label.lower()}: it can no longer be changed.'
                         if self.actor.can(Permission.SEND) else 'You can view tasks but not change them.') \
                    .classes('text-grey-7').mark('read-only')
            with ui.row().classes('w-full justify-end'):
                ui.button('Close' if not self.editable else 'Cancel', on_click=self.dialog.close).props('flat')
                if self.editable:
                    ui.button('Save', on_click=self._save).mark('save-task')
        self._update_buttons()
        self.dialog.open()

    async def _check(self, path: Path, filename: str) -> FileCheck:
        return await check_file(self.actor, self.task.kind, path, filename, self.task.template_id, self.task.id,
                                self.task.time_zone)

    def _update_buttons(self) -> None:
        if not self.editable:
            return
        check = self.files.check if self.files else None
        self.add_button.set_visibility(bool(check and check.valid))
        self.add_button.text = f'Add {plural(check.valid, "row")}' if check else 'Add rows'

    async def _add_rows(self) -> None:
        assert self.files and self.files.check
        added = self.files.check.valid
        if await attempt(tasks.add_rows(self.actor, self.task.id, self.files.check)):
            self.files.taken()
            await self.saved(f'{plural(added, "row")} added to “{self.task.name}”.', close=False)

    async def _save(self) -> None:
        task = await self._submitted(tasks.update_task(self.actor, self.task.id, self.inputs['name'].value,
                                                       self.ranges, self.zone.value or ''))
        if task is not None:
            await self.saved(f'Task “{task.name}” saved.')
