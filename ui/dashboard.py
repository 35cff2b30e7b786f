"""The home page: today's and this month's messages by status and channel with their cost, and the messages sent and
delivered per hour, updated live."""
from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from nicegui import ui

from domain import events, stats
from domain.auth import Actor
from domain.models import SenderName, SenderStatus, Template
from domain.statuses import MessageStatus

from . import session
from .frame import page_frame

TICK_SECONDS = 2.0  # how often the page looks whether messages changed
# The month's figures refresh at most this often: at a million messages their query holds SQLite's one connection
# for about half a second.
MONTH_SECONDS = 300.0
HOURS = 24
T = TypeVar('T')
_S = MessageStatus
STATUS_COLORS = {
    **{status: 'blue' for status in stats.IN_PROGRESS},
    **{status: 'green' for status in (_S.DELIVERED, _S.READ)},
    **{status: 'red' for status in stats.FAILED},
    _S.SKIPPED: 'grey', _S.CANCELED: 'grey',
}


def history_link(text: str, filters: dict[str, str]) -> ui.link:
    """A link to the history page filtered by `filters` (its URL query)."""
    return ui.link(text, f'/history?{urlencode(filters)}')


def money(amount: Decimal) -> str:
    """Two decimals, or up to the column's four where they matter (0.035)."""
    places = max(2, -int(amount.normalize().as_tuple().exponent))
    return f'{amount:,.{places}f}'


class PeriodCard:
    """Total, delivered, failed, in progress and cost of a period, and its counts by status and channel, each a link
    to the history of the period. Marked `<key>-<figure>` (e.g. `today-failed`, `month-status-DELIVERED`)."""

    def __init__(self, title: str, key: str) -> None:
        self.key = key
        with ui.card().classes('flex-1 min-w-[24rem]'):
            with ui.row().classes('w-full items-baseline'):
                ui.label(title).classes('text-h6')
                self.subtitle = ui.label().classes('text-grey-7')
            self.content = ui.column().classes('w-full gap-3')

    def show(self, period: stats.Period, subtitle: str) -> None:
        self.subtitle.text = subtitle
        since = period.start.date().isoformat()
        self.content.clear()
        with self.content:
            with ui.row().classes('w-full gap-6'):
                with ui.column().classes('gap-0'):
                    ui.label('Total').classes('text-caption text-grey-7')
                    history_link(f'{period.total:,}', {'from': since}) \
                        .classes('text-h4 no-underline text-primary').mark(f'{self.key}-total')
                self._figure('Delivered', 'delivered', period.delivered, 'text-positive')
                self._figure('Failed', 'failed', period.failed, 'text-negative')
                self._figure('In progress', 'in-progress', period.in_progress, 'text-info')
                with ui.column().classes('gap-0'):
                    ui.label('Cost').classes('text-caption text-grey-7')
                    costs = [f'{money(amount)} {currency}' for currency, amount in period.cost.items()]
                    ui.label(', '.join(costs) or '—').classes('text-h6').mark(f'{self.key}-cost')
            self._counts('By status', since, [
                (status.value, count, STATUS_COLORS[status], {'status': status.value}, f'status-{status.value}')
                for status in MessageStatus if (count := period.by_status[status])])
            self._counts('By channel', since, [
                (channel.label, count, 'indigo', {'channel': channel.value}, f'channel-{channel.value}')
                for channel, count in period.by_channel.most_common()])
            if not period.total:
                ui.label('No messages yet.').classes('text-grey-7')

    def _figure(self, label: str, key: str, value: int, color: str) -> None:
        with ui.column().classes('gap-0'):
            ui.label(label).classes('text-caption text-grey-7')
            ui.label(f'{value:,}').classes(f'text-h6 {color}').mark(f'{self.key}-{key}')

    def _counts(self, title: str, since: str, items: list[tuple[str, int, str, dict[str, str], str]]) -> None:
        """Chips of (label, count, color, history filters, marker)."""
        if not items:
            return
        with ui.row().classes('w-full items-center gap-2'):
            ui.label(title).classes('text-caption text-grey-7 w-20')
            for label, count, color, filters, marker in items:
                history_link(f'{label} {count:,}', {**filters, 'from': since}) \
                    .classes(f'no-underline rounded px-2 py-1 text-body2 bg-{color}-1 text-{color}-9') \
                    .mark(f'{self.key}-{marker}')


class Shared:
    """The latest run of a query, shared by every open dashboard of this process: a caller gets a run that started
    after `since`, and a new run starts only when there is none. However many dashboards are open, a stream of
    changes costs about one query per refresh interval."""

    def __init__(self) -> None:
        self.started = -math.inf
        self.task: asyncio.Future[Any] | None = None

    async def get(self, since: float, run: Callable[[], Awaitable[T]]) -> tuple[float, T]:
        """When the run started (time.monotonic()), and its result."""
        task = self.task
        if task is None or self.started <= since or task.cancelled() or (task.done() and task.exception()):
            self.started = time.monotonic()
            task = self.task = asyncio.ensure_future(run())
        started = self.started
        return started, await asyncio.shield(task)  # a caller that goes away does not cancel the others' run


_TODAY: defaultdict[str, Shared] = defaultdict(Shared)  # by time zone
_MONTH: defaultdict[str, Shared] = defaultdict(Shared)


async def _today(actor: Actor, zone: ZoneInfo) -> tuple[stats.Period, stats.Hourly]:
    at = stats.now()
    return await stats.today(actor, zone, at), await stats.per_hour(actor, HOURS, zone, at)


class Dashboard:
    """The page's figures. Domain events only note that figures went stale; a timer reloads stale figures every few
    seconds (the month's at most every MONTH_SECONDS), so thousands of changes a second cost one query per period and
    refresh, not one per change.

    Figures are stale while a change came after the start of the run they show; `*_since` is then the time their next
    run must have started after (None: fresh)."""

    def __init__(self, actor: Actor, zone: ZoneInfo) -> None:
        self.actor, self.zone = actor, zone
        self.changed_at = -math.inf  # the latest change heard of
        self.today_since: float | None = None  # today's figures and the chart
        self.month_since: float | None = None
        self.month_shown = -math.inf
        self.hour = stats.hour_start(stats.now(), zone)
        ui.label(f'Messages created today and this month. Times in {zone.key}; the figures update live.') \
            .classes('text-grey-7')
        with ui.row().classes('w-full gap-4 items-stretch'):
            self.today = PeriodCard('Today', 'today')
            self.month = PeriodCard('This month', 'month')
        with ui.card().classes('w-full'):
            ui.label(f'Sent and delivered per hour, last {HOURS} hours').classes('text-h6')
            self.chart = ui.echart(_chart_options()).classes('w-full h-72')

    def changed(self, _changes: list[events.MessageChanged]) -> None:
        self.changed_at = time.monotonic()
        if self.today_since is None:
            self.today_since = self.changed_at
        if self.month_since is None:
            self.month_since = self.changed_at

    def _since(self, started: float) -> float | None:
        """What figures shown from a run that started at `started` still wait for."""
        return started if self.changed_at >= started else None

    async def show_today(self, since: float) -> None:
        started, (day, hourly) = await _TODAY[self.zone.key].get(since, lambda: _today(self.actor, self.zone))
        self.today_since = self._since(started)
        self.hour = hourly.hours[-1]
        self.today.show(day, f'{day.start:%A, %d %B %Y}')
        self.chart.options['xAxis']['data'] = [f'{hour:%H}:00' for hour in hourly.hours]
        self.chart.options['series'][0]['data'] = hourly.sent
        self.chart.options['series'][1]['data'] = hourly.delivered
        self.chart.update()

    async def show_month(self, since: float) -> None:
        self.month_shown = time.monotonic()
        started, month = await _MONTH[self.zone.key].get(since, lambda: stats.this_month(self.actor, self.zone))
        self.month_since = self._since(started)
        self.month.show(month, f'{month.start:%B %Y}')

    async def tick(self) -> None:
        """Reload what went stale; a new hour (day, month) moves the figures on even when nothing changed."""
        now = time.monotonic()
        if stats.hour_start(stats.now(), self.zone) != self.hour:
            await self.show_today(now)
            await self.show_month(now)
            return
        if self.today_since is not None:
            await self.show_today(self.today_since)
        if self.month_since is not None and now - self.month_shown >= MONTH_SECONDS:
            await self.show_month(self.month_since)


def _chart_options() -> dict[str, Any]:
    return {
        'animation': False,  # redrawn every few seconds while messages flow
        'tooltip': {'trigger': 'axis'},
        'legend': {'data': ['Sent', 'Delivered'], 'top': 0},
        'grid': {'left': 48, 'right': 16, 'top': 36, 'bottom': 28},
        'xAxis': {'type': 'category', 'data': []},
        'yAxis': {'type': 'value', 'minInterval': 1},
        'series': [{'name': 'Sent', 'type': 'bar', 'data': [], 'itemStyle': {'color': '#1976d2'}},
                   {'name': 'Delivered', 'type': 'bar', 'data': [], 'itemStyle': {'color': '#21ba45'}}],
    }


async def _shortcuts() -> None:
    templates = await Template.all().count()
    senders = await SenderName.filter(status=SenderStatus.APPROVED).count()
    with ui.row().classes('gap-4 text-body2'):
        ui.link(f'{templates:,} templates', '/templates')
        ui.link(f'{senders:,} approved sender names', '/settings/senders')


def create() -> None:
    @ui.page('/')
    async def dashboard_page() -> None:
        actor = await page_frame('Dashboard')
        if not actor:
            return
        dashboard = Dashboard(actor, ZoneInfo(session.browser_zone()))
        # on_delete, not on_disconnect: NiceGUI 3 also calls the latter when the browser is about to reconnect.
        ui.context.client.on_delete(events.subscribe(dashboard.changed))
        opened = time.monotonic()
        await dashboard.show_today(opened)
        await dashboard.show_month(opened)
        await _shortcuts()
        ui.timer(TICK_SECONDS, dashboard.tick)
