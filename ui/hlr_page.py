"""Notifications → Check phones (HLR): check typed, pasted or uploaded numbers; search the results by part of the
number and by period (kept in the URL); export what the search finds to Excel."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from nicegui import events, run, ui

from domain import hlr, phones, tariffs
from domain.auth import Actor, Permission
from domain.errors import HeraldError, ValidationError
from domain.models import HlrCheck
from domain.xlsx import MEDIA_TYPE, write_xlsx

from . import session
from .forms import show_errors
from .frame import page_frame
from .tables import ServerTable, column, day_or_none, iso, set_query, time_column

PATH = '/hlr'
MAX_TEXT_LENGTH = 200_000  # what the browser may send at once stays under Socket.IO's 1 MB limit
COLUMNS = [
    column('phone', 'Phone', sortable=True),
    column('status', 'Status', sortable=True),
    column('number_type', 'Type', sortable=True),
    column('network', 'Operator', sortable=True),
    column('region', 'Region', sortable=True),
    {**column('cost', 'Cost', sortable=True), 'align': 'right'},
    time_column('created_at', 'Created'),
]
_STATUS_CELL = r'''
<q-td :props="props">
  <q-badge :color="{VALID: 'positive', INVALID: 'negative', ABSENT: 'warning', UNKNOWN: 'grey-7', ERROR: 'orange-9'}[props.value]"
           :label="props.value" class="text-body2" />
  <span v-if="props.row.reason" class="q-ml-sm text-grey-7">{{ props.row.reason }}</span>
</q-td>
'''


def create() -> None:
    @ui.page(PATH)
    async def hlr_page(search: str = '', date_from: str = '', date_to: str = '', sort: str = 'created_at',
                       desc: bool = True, page: int = 1) -> None:
        actor = await page_frame('Check phones (HLR)')
        if actor:
            await HlrPage(actor, ZoneInfo(session.browser_zone()), search, day_or_none(date_from), day_or_none(date_to), sort, desc,
                          page).table.load()


def _row(check: HlrCheck) -> dict[str, Any]:
    region = ', '.join(part for part in (check.region, check.country) if part)
    cost = f'{tariffs.plain(check.cost)} {check.currency}'.strip()
    return {'id': str(check.id), 'phone': check.phone, 'status': check.status, 'reason': hlr.reason(check.status_code),
            'number_type': check.number_type, 'network': check.network, 'region': region, 'cost': cost,
            'created_at': iso(check.created_at)}


class HlrPage:
    def __init__(self, actor: Actor, zone: ZoneInfo, search: str, date_from: date | None, date_to: date | None,
                 sort: str, descending: bool, page: int) -> None:
        self.actor = actor
        self.zone = zone  # the browser's: the table shows times in it, and the period means its days
        self.period = (date_from, date_to or date_from) if date_from else None
        self.check_button: ui.button | None = None
        if actor.can(Permission.SEND):
            self._check_form()
        with ui.row().classes('w-full items-center gap-2'):
            self.search_input = ui.input('Search by phone', value=search, on_change=self._reload) \
                .props('debounce=300 clearable').classes('w-64').mark('search')
            with self.search_input.add_slot('prepend'):
                ui.icon('search')
            self._period_picker()
            ui.button('Clear', on_click=self._clear).props('flat')
            ui.space()
            self.export_button = ui.button('Export', icon='download', on_click=self._export).mark('export')
        self.progress = ui.linear_progress(show_value=False).props('indeterminate').classes('w-full')
        self.progress.set_visibility(False)
        self.table = ServerTable(COLUMNS, self.fetch, sort_by=sort if sort in hlr.SORTABLE else 'created_at',
                                 descending=descending, page=page, on_loaded=self._remember_in_url)
        self.table.table.add_slot('body-cell-status', _STATUS_CELL)
        self.empty = ui.label().classes('text-grey-7')

    # --- checking ----------------------------------------------------------------------------------------------

    def _check_form(self) -> None:
        with ui.card().classes('w-full'):
            ui.label('Check phone numbers').classes('text-h6')
            self.numbers = ui.textarea('Phone numbers', placeholder='One or many: one per line, or separated by '
                                       'commas or semicolons') \
                .props(f'outlined counter rows=4 maxlength={MAX_TEXT_LENGTH}').classes('w-full').mark('numbers')
            with ui.row().classes('w-full items-center gap-4'):
                self.check_button = ui.button('Check', icon='phone_in_talk', on_click=self._check_text).mark('check')
                ui.upload(label='Or upload a file (.xlsx, .csv, .txt)', auto_upload=True,
                          max_file_size=hlr.MAX_FILE_BYTES, on_upload=self._check_file,
                          on_rejected=lambda: ui.notify(hlr.FILE_TOO_BIG, type='negative')) \
                    .props(f'accept="{",".join(hlr.FILE_TYPES)}" flat bordered').classes('w-96').mark('upload')
            ui.label(f'At most {hlr.MAX_NUMBERS:,} numbers per check (upload long lists as a file); repeated '
                     'numbers are checked once. Numbers without a country code are read as numbers of the default '
                     'region.').classes('text-grey-7')

    async def _check_text(self) -> None:
        if await self._check(hlr.split_numbers(self.numbers.value or ''), {'phones': self.numbers}):
            self.numbers.value = ''

    async def _check_file(self, e: events.UploadEventArguments) -> None:
        if e.file.size() > hlr.MAX_FILE_BYTES:
            ui.notify(hlr.FILE_TOO_BIG, type='negative')
            return
        e.sender.reset()
        try:
            with self._busy():  # calamine leaves the GIL to other threads for most of the reading
                numbers = await run.io_bound(hlr.numbers_from_file, e.file.name, await e.file.read())
        except ValidationError as error:
            ui.notify(f'{e.file.name}: {error.errors["file"]}', type='negative')
            return
        if numbers is not None:
            await self._check(numbers, {})

    async def _check(self, numbers: list[phones.Raw], inputs: dict[str, ui.element]) -> bool:
        """Check the numbers; what is wrong with them shows next to `inputs` (else in a notification)."""
        with self._busy():
            try:
                check_id = await hlr.check_phones(self.actor, numbers)
            except ValidationError as error:
                show_errors(error, inputs)
                return False
            except HeraldError as error:
                ui.notify(str(error), type='negative')
                return False
            counts = await hlr.count_by_status(self.actor, check_id)
        ui.notify(f'Checked {sum(counts.values()):,} number(s): {hlr.tally(counts)}.', type='positive')
        self.numbers.error = None
        await self.table.load({'page': 1})
        return True

    # --- filters and the table ---------------------------------------------------------------------------------

    def _period_picker(self) -> None:
        self.period_input = ui.input('Period', value=self._period_label()).props('readonly').classes('w-64') \
            .mark('period')
        with self.period_input.add_slot('append'):
            ui.icon('event').classes('cursor-pointer')
        with self.period_input, ui.menu().props('no-parent-event') as menu:
            value = {'from': self.period[0].isoformat(), 'to': self.period[1].isoformat()} if self.period else None
            self.date_picker = ui.date(value, on_change=self._on_period).props('range').mark('period-picker')
        self.period_input.on('click', menu.open)

    def _period_label(self) -> str:
        if not self.period:
            return ''
        start, end = self.period
        return start.isoformat() if start == end else f'{start.isoformat()} – {end.isoformat()}'

    async def _on_period(self, e: events.ValueChangeEventArguments) -> None:
        value = {'from': e.value, 'to': e.value} if isinstance(e.value, str) else e.value or {}  # one day: a str
        start, end = day_or_none(value.get('from', '')), day_or_none(value.get('to', ''))
        self.period = (start, end) if start and end else None
        self.period_input.value = self._period_label()
        await self._reload()

    async def _clear(self) -> None:
        self.search_input.set_value('')  # its change handler reloads
        self.date_picker.set_value(None)

    async def _reload(self) -> None:
        await self.table.load({'page': 1})

    def _utc_period(self) -> tuple[datetime | None, datetime | None]:
        """The chosen days, from the start of the first to the end of the last, in the browser's time zone."""
        if not self.period:
            return None, None
        start, end = self.period
        return datetime.combine(start, time(), self.zone), datetime.combine(end + timedelta(days=1), time(), self.zone)

    @property
    def search(self) -> str:
        return self.search_input.value or ''

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        date_from, date_to = self._utc_period()
        try:
            total, rows = await hlr.search_checks(self.actor, self.search, date_from, date_to, offset, limit,
                                                  sort or 'created_at', descending)
        except ValidationError as error:
            show_errors(error, {'phone': self.search_input})
            total, rows = 0, []
        else:
            self.search_input.error = None
        filtered = self.search or self.period
        self.empty.text = 'No checks match your search.' if filtered else 'No phone numbers have been checked yet.'
        self.empty.set_visibility(total == 0)
        return total, [_row(check) for check in rows]

    def _remember_in_url(self, pagination: dict[str, Any]) -> None:
        start, end = self.period or (None, None)
        set_query(PATH, {'search': self.search, 'date_from': start and start.isoformat(),
                         'date_to': end and end.isoformat(), 'sort': pagination['sortBy'],
                         'desc': str(bool(pagination['descending'])).lower(), 'page': str(pagination['page'])})

    # --- export ------------------------------------------------------------------------------------------------

    async def _export(self) -> None:
        """Every result the search finds (not only the page shown), as the table sorts them."""
        date_from, date_to = self._utc_period()
        pagination = self.table.table.pagination
        with self._busy():
            try:
                rows = await hlr.export_rows(self.actor, self.search, date_from, date_to,
                                             pagination.get('sortBy') or 'created_at',
                                             bool(pagination.get('descending')), self.zone)
            except ValidationError as error:
                show_errors(error, {'phone': self.search_input})
                return
            with tempfile.TemporaryDirectory() as directory:
                path = Path(directory) / 'hlr.xlsx'
                if await run.cpu_bound(write_xlsx, path, 'HLR checks', hlr.EXPORT_HEADERS, rows) is None:
                    return  # the app is stopping
                data = await run.io_bound(path.read_bytes)
        ui.download.content(data, f'hlr-checks-{date.today().isoformat()}.xlsx', MEDIA_TYPE)

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """The progress bar shows and the buttons rest while a check or an export runs."""
        buttons = [button for button in (self.check_button, self.export_button) if button]
        self.progress.set_visibility(True)
        for button in buttons:
            button.disable()
        try:
            yield
        finally:
            self.progress.set_visibility(False)
            for button in buttons:
                button.enable()
