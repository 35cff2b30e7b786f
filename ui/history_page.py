"""Notification history: every message with its status, filters kept in the URL, server-side paging and sorting,
live status changes, a detail dialog and the Excel report."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nicegui import events as ui_events
from nicegui import ui
from starlette.requests import Request

from domain import events, history, reports
from domain.auth import Actor, Permission
from domain.channels import Channel
from domain.history import HistoryFilter, Sort, StatusView
from domain.statuses import MessageStatus

from . import session
from .export import export_button
from .forms import attempt, confirm
from .frame import page_frame
from .tables import ServerTable, column, day_or_none, set_query, time_column

PATH = '/history'
ALL_TIME = 'all'  # the URL's `from` when the period is cleared (no `from` means this month)
REFRESH_SECONDS = 1.0  # at most one live refresh per second and page
COLUMNS = [
    # Ids are time-ordered (UUIDv7): their start is the same for a whole batch, their end tells them apart.
    {**column('id', 'Id'), 'classes': 'font-mono text-caption', ':format': 'value => "…" + value.slice(-8)'},
    column('recipient', 'Recipient'),
    column('channel', 'Channel'),
    column('status', 'Status'),
    column('short_link_clicks', 'Short link clicks'),
    column('tracks', 'Tracks'),
    time_column('created_at', 'Created'),
    time_column('sent_at', 'Sent'),
    time_column('delivered_at', 'Delivered'),
    {**column('details', ''), 'field': 'id', 'align': 'right'},
]
STATUS_CELL = '''
<q-td :props="props">
  <q-badge :color="{DELIVERED: 'positive', READ: 'positive', UNDELIVERED: 'negative', ERROR: 'negative',
                    EXPIRED: 'negative', CANCELED: 'grey', SKIPPED: 'grey'}[props.value] || 'primary'"
           :label="props.value" />
</q-td>
'''
DETAILS_CELL = ('<q-td :props="props" auto-width><q-btn flat round dense icon="info" aria-label="Details" '
                '@click.stop="() => $parent.$emit(\'details\', props.row)"><q-tooltip>Details</q-tooltip></q-btn>'
                '</q-td>')
STATUS_OPTIONS = {'': 'All statuses'} | {status.value: status.value.capitalize() for status in MessageStatus} | {
    view.value: view.label for view in StatusView}
CHANNEL_OPTIONS = {'': 'All channels'} | {channel.value: channel.label for channel in Channel}


def create() -> None:
    @ui.page(PATH)
    async def history_page(request: Request) -> None:
        actor = await page_frame('Notification history')
        if not actor:
            return
        query = request.query_params
        filters = filters_of(query, session.browser_zone())
        listing = HistoryList(actor, filters, query.get('sort', ''), query.get('desc', 'true') != 'false',
                              _number(query.get('page'), 1), _number(query.get('size'), 20))
        await listing.table.load()


def filters_of(query: Mapping[str, str], zone: str) -> HistoryFilter:
    """The filters a history URL names; without `from` the period starts with the current month, `from=all`
    means all time."""
    channel = query.get('channel', '')
    return HistoryFilter(
        search=query.get('search', ''), channel=Channel(channel) if channel in Channel._value2member_map_ else None,
        status=history.status_choice(query.get('status')), bulk_id=query.get('bulk') or None,
        task_id=query.get('task') or None, zone=zone, date_to=day_or_none(query.get('to', '')),
        date_from=day_or_none(query['from']) if 'from' in query else HistoryFilter.this_month(zone).date_from)


def _number(value: str | None, default: int) -> int:
    return int(value) if value and value.isdigit() else default


class HistoryList:
    def __init__(self, actor: Actor, filters: HistoryFilter, sort: str, descending: bool, page: int,
                 size: int) -> None:
        self.actor = actor
        self.filters = filters
        self._filter_bar()
        sort = sort if sort in Sort._value2member_map_ else Sort.CREATED.value
        self.table = ServerTable(COLUMNS, self.fetch, sort_by=sort, descending=descending, page=page,
                                 rows_per_page=size if size in history.PAGE_SIZES else 20,
                                 on_loaded=self._remember_in_url)
        for name in ('created_at', 'sent_at', 'delivered_at'):
            next(c for c in self.table.table.columns if c['name'] == name)['sortable'] = True
        self.table.table.add_slot('body-cell-status', STATUS_CELL)
        self.table.table.add_slot('body-cell-details', DETAILS_CELL)
        self.table.table.on('details', lambda e: self.show_details(e.args['id']))
        self.table.table.on('rowClick', lambda e: self.show_details(e.args[1]['id']))
        self.table.table.classes('cursor-pointer').props('dense').mark('messages')
        self.count = ui.label().classes('text-grey-7 text-caption').mark('count')
        self.empty = ui.label('No messages match the filters.').classes('text-grey-7')
        self.empty.set_visibility(False)
        self.changed: set[str] = set()
        self.others_changed = False
        unsubscribe = events.subscribe(self._hear)
        ui.context.client.on_delete(unsubscribe)
        ui.timer(REFRESH_SECONDS, self._refresh)

    def _filter_bar(self) -> None:
        filters = self.filters
        with ui.row().classes('w-full items-center gap-2'):
            self.search = ui.input('Search by phone', value=filters.search, on_change=self._apply) \
                .props('debounce=400 clearable').classes('w-56').mark('search')
            with self.search.add_slot('prepend'):
                ui.icon('search')
            self.period = _period_input(filters, self._apply)
            self.channel = ui.select(CHANNEL_OPTIONS, value=filters.channel.value if filters.channel else '',
                                     label='Channel', on_change=self._apply).classes('w-40')
            self.status = ui.select(STATUS_OPTIONS, value=filters.status.value if filters.status else '',
                                    label='Status', on_change=self._apply).classes('w-48')
            ui.button('Clear', on_click=self._clear).props('flat')
            if filters.bulk_id or filters.task_id:
                self.scope = ui.chip(f'Only {"bulk " + filters.bulk_id if filters.bulk_id else "task"}',
                                     removable=True, on_value_change=self._drop_scope)
            ui.space()
            language = ui.select({'en': 'English headers', 'ru': 'Russian headers'}, value='en',
                                 label='Report').classes('w-40')
            export_button('Export', lambda path, progress: reports.export_history(
                self.actor, self.filters, path, language.value, progress),
                lambda: f'notification-history-{date.today().isoformat()}.xlsx')

    def _current(self) -> HistoryFilter:
        start, end = _period_of(self.period.value)
        return HistoryFilter(
            search=self.search.value or '', channel=Channel(self.channel.value) if self.channel.value else None,
            status=history.status_choice(self.status.value), date_from=start, date_to=end,
            bulk_id=self.filters.bulk_id, task_id=self.filters.task_id, zone=self.filters.zone)

    async def _apply(self) -> None:
        self.filters = self._current()
        await self.table.load({'page': 1})

    async def _clear(self) -> None:
        default = HistoryFilter.this_month(self.filters.zone)
        self.filters = HistoryFilter(zone=self.filters.zone, date_from=default.date_from)
        for element, value in ((self.search, ''), (self.channel, ''), (self.status, ''),
                               (self.period, _period_text(default.date_from, None))):
            element.set_value(value)  # each change reloads; the last one sees every field cleared
        await self.table.load({'page': 1})

    async def _drop_scope(self, event: ui_events.ValueChangeEventArguments) -> None:
        if not event.value:
            self.filters = replace(self.filters, bulk_id=None, task_id=None)
            await self.table.load({'page': 1})

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        self.filters = self._current()
        page = await history.list_messages(self.actor, self.filters, offset, limit,
                                           Sort(sort) if sort in Sort._value2member_map_ else Sort.CREATED,
                                           descending)
        self.empty.set_visibility(page.total == 0)
        self.count.text = (f'{page.total:,} messages' if page.exact else
                           f'More than {history.COUNT_CAP:,} messages: narrow the filters to count them exactly')
        return page.total, page.rows

    def _remember_in_url(self, pagination: dict[str, Any]) -> None:
        filters = self.filters
        set_query(PATH, {
            'search': filters.search, 'channel': filters.channel.value if filters.channel else '',
            'status': filters.status.value if filters.status else '',
            'from': filters.date_from.isoformat() if filters.date_from else '',
            'to': filters.date_to.isoformat() if filters.date_to else '',
            'bulk': filters.bulk_id or '', 'task': filters.task_id or '',
            'sort': pagination['sortBy'], 'desc': str(bool(pagination['descending'])).lower(),
            'page': str(pagination['page']), 'size': str(pagination['rowsPerPage']),
        } | ({} if filters.date_from else {'from': ALL_TIME}))

    def _hear(self, changes: list[events.MessageChanged]) -> None:
        """Runs on the sender's path: only note what changed; `_refresh` reads it at most once a second."""
        shown = {row['id'] for row in self.table.table.rows}
        for change in changes:
            if change.message_id in shown:
                self.changed.add(change.message_id)
            else:
                self.others_changed = True

    async def _refresh(self) -> None:
        pagination = self.table.table.pagination
        if self.others_changed and pagination.get('page') == 1:
            self.others_changed = False
            self.changed.clear()
            await self.table.load()
            return
        self.others_changed = False
        if not self.changed:
            return
        ids, self.changed = list(self.changed), set()
        fresh = {row['id']: row for row in await history.messages_by_id(self.actor, ids)}
        if fresh:
            self.table.table.rows = [fresh.get(row['id'], row) for row in self.table.table.rows]

    async def show_details(self, message_id: str) -> None:
        await attempt(self._open_details(message_id))

    async def _open_details(self, message_id: str) -> None:
        details = await history.message_details(self.actor, message_id)
        with ui.dialog() as dialog, ui.card().classes('w-[56rem] max-w-full'):
            dialog.on('hide', dialog.delete)
            _details_body(details, self.filters.zone)
            with ui.row().classes('w-full justify-end'):
                if details.can_cancel and self.actor.can(Permission.SEND):
                    ui.button('Cancel message', color='negative', icon='block',
                              on_click=lambda: self._cancel(dialog, message_id))
                ui.button('Close', on_click=dialog.close).props('flat')
            steps = [step for step in details.steps if step['id'] != details.fields['id']]
            if steps:
                ui.label('Other steps of this cascade').classes('text-subtitle2 mt-2')
                for step in steps:
                    ui.button(f"{step['step_index'] + 1}. {step['channel']} → {step['recipient']}: {step['status']}",
                              on_click=lambda s=step: (dialog.close(), self.show_details(s['id']))) \
                        .props('flat no-caps align=left').classes('w-full')
        dialog.open()

    async def _cancel(self, dialog: ui.dialog, message_id: str) -> None:
        if not await confirm('Cancel this message? It will not be sent.', 'Cancel message'):
            return
        if await attempt(history.cancel_message(self.actor, message_id)):
            ui.notify('Message canceled.')
            dialog.close()
            await self.table.load()


_FIELDS = (
    ('Id', 'id'), ('Status', 'status'), ('Status description', 'status_description'), ('Channel', 'channel'),
    ('Recipient', 'recipient'), ('Sender', 'sender'), ('Provider', 'provider'), ('Route', 'route_name'),
    ('Provider message id', 'provider_message_id'), ('Operator', 'network'), ('Parts', 'parts'), ('Cost', 'cost'),
    ('Currency', 'currency'), ('Attempts', 'attempt'), ('Required', 'required'), ('In doubt', 'in_doubt'),
    ('Validity (minutes)', 'validity_minutes'), ('Template', 'template_name'), ('Template id', 'template_id'),
    ('Download ID (bulk)', 'bulk_id'), ('Group ID', 'group_id'), ('Delivery ID (flow)', 'flow_id'),
    ('Task', 'task_id'), ('External id', 'external_id'), ('Client id', 'client_id'), ('Phone', 'phone'),
    ('Email', 'email'), ('Variables', 'variables'), ('Callback URL', 'callback_url'),
    ('Short link clicks', 'short_link_clicks'), ('Email opens', 'email_opens'), ('Email clicks', 'email_clicks'),
    ('Created', 'created_at'), ('Due', 'due_at'), ('Send started', 'send_started_at'), ('Sent', 'sent_at'),
    ('Delivered', 'delivered_at'), ('Expires', 'expires_at'), ('Ended', 'ended_at'), ('Updated', 'updated_at'),
)


def _local(moment: str, zone: str) -> str:
    return datetime.fromisoformat(moment).astimezone(ZoneInfo(zone)).strftime('%Y-%m-%d %H:%M:%S')


def _details_body(details: history.MessageDetails, zone: str) -> None:
    fields = details.fields
    ui.label(f"Message {fields['id']}").classes('text-h6')
    with ui.grid(columns='auto 1fr').classes('w-full gap-x-4 gap-y-0 text-body2'):
        for label, key in _FIELDS:
            value = fields.get(key)
            if value in (None, '', '{}'):
                continue
            ui.label(label).classes('text-grey-7')
            ui.label(_local(value, zone) if key.endswith('_at') else str(value)).classes('break-all')
    ui.label('Text').classes('text-subtitle2 mt-2')
    if fields.get('subject'):
        ui.label(f"Subject: {fields['subject']}").classes('text-body2')
    ui.label(fields.get('text') or '—').classes('whitespace-pre-wrap text-body2 bg-grey-2 p-2 rounded w-full') \
        .mark('message-text')
    ui.label('Status timeline').classes('text-subtitle2 mt-2')
    ui.table(columns=[time_column('at', 'Time', sortable=False), column('status', 'Status'),
                      column('description', 'Description')],
             rows=details.events, row_key='at').classes('w-full').props('dense flat hide-pagination') \
        .mark('timeline')


def _period_text(start: date | None, end: date | None) -> str:
    if not start and not end:
        return ''
    return f"{start.isoformat() if start else ''} – {end.isoformat() if end else ''}"


def _period_of(text: str | None) -> tuple[date | None, date | None]:
    """The period input's "YYYY-MM-DD – YYYY-MM-DD" (either side may be empty)."""
    start, _, end = (text or '').partition('–')
    return day_or_none(start.strip()), day_or_none(end.strip())


def _period_input(filters: HistoryFilter, on_change) -> ui.input:
    """A text input "from – to" with a range calendar in a menu."""
    period = ui.input('Period', value=_period_text(filters.date_from, filters.date_to),
                      on_change=on_change).props('debounce=400 clearable').classes('w-64').mark('period')
    with period.add_slot('append'):
        with ui.icon('event').classes('cursor-pointer'):
            with ui.menu() as menu:
                calendar = ui.date(value={'from': str(filters.date_from or ''), 'to': str(filters.date_to or '')}) \
                    .props('range')

                def pick(event: ui_events.ValueChangeEventArguments) -> None:
                    value = event.value
                    if isinstance(value, dict):
                        period.set_value(f"{value.get('from', '')} – {value.get('to', '')}")
                    elif isinstance(value, str) and value:
                        period.set_value(f'{value} – {value}')
                    menu.close()

                calendar.on_value_change(pick)
    return period
