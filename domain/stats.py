"""Message statistics for the dashboard: counts by status and channel and the cost of today and of this month, and
the messages sent and delivered per hour. Days, months and hours are those of a time zone (the page's: the browser's).

The messages table may hold millions of rows: every query reads ranges of an index; only the cost reads table rows
(those of the period's billed messages)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal

from . import sql
from .auth import Actor, Permission
from .channels import Channel
from .delivery import DELIVERED, HANDED_OVER
from .statuses import TERMINAL, MessageStatus

_S = MessageStatus
FAILED = HANDED_OVER  # ended without delivery: UNDELIVERED, ERROR, EXPIRED
IN_PROGRESS = frozenset(MessageStatus) - TERMINAL
BILLED = frozenset({_S.SENT, _S.PENDING, _S.DELIVERED, _S.READ, _S.UNDELIVERED, _S.EXPIRED})  # a provider took it
HOUR = timedelta(hours=1)
COST_SCALE = Decimal('0.0001')  # the cost column's four decimals


@dataclass
class Period:
    """The messages created in [start, end) (times in the period's zone)."""
    start: datetime
    end: datetime
    by_status: Counter[MessageStatus] = field(default_factory=Counter)
    by_channel: Counter[Channel] = field(default_factory=Counter)
    cost: dict[str, Decimal] = field(default_factory=dict)  # currency → the cost of the messages a provider took

    @property
    def total(self) -> int:
        return self.by_status.total()

    @property
    def delivered(self) -> int:
        return self._sum(DELIVERED)

    @property
    def failed(self) -> int:
        return self._sum(FAILED)

    @property
    def in_progress(self) -> int:
        return self._sum(IN_PROGRESS)

    def _sum(self, statuses: frozenset[MessageStatus]) -> int:
        return sum(self.by_status[status] for status in statuses)


@dataclass(frozen=True)
class Hourly:
    """Messages sent and delivered in each hour, oldest first; `hours` are the hours' starts, in their zone."""
    hours: list[datetime]
    sent: list[int]
    delivered: list[int]


def now() -> datetime:
    return datetime.now(timezone.utc)


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def day_start(moment: datetime, zone: tzinfo = timezone.utc) -> datetime:
    return _midnight(moment.astimezone(zone).date(), zone)


def month_start(moment: datetime, zone: tzinfo = timezone.utc) -> datetime:
    return _midnight(moment.astimezone(zone).date().replace(day=1), zone)


def hour_start(moment: datetime, zone: tzinfo = timezone.utc) -> datetime:
    return moment.astimezone(zone).replace(minute=0, second=0, microsecond=0)


async def today(actor: Actor, zone: tzinfo = timezone.utc, at: datetime | None = None) -> Period:
    """The messages created today in `zone` (a day of 23 to 25 hours)."""
    actor.require(Permission.VIEW)
    start = day_start(at or now(), zone)
    return await _period(start, _midnight(start.date() + timedelta(days=1), zone))


async def this_month(actor: Actor, zone: tzinfo = timezone.utc, at: datetime | None = None) -> Period:
    actor.require(Permission.VIEW)
    start = month_start(at or now(), zone)
    return await _period(start, _midnight((start.date() + timedelta(days=31)).replace(day=1), zone))


async def _period(start: datetime, end: datetime) -> Period:
    """Counts from one GROUP BY and the cost from another, both over ranges of indexes that hold what they read.
    The IN lists name every status and channel, yet they let the planner walk the (status, channel, created_at) index
    range by range, in the GROUP BY's order: no sort and no table row read for the counts."""
    period = Period(start, end)
    statuses, channels = list(MessageStatus), list(Channel)
    for row in await sql.execute(
            f'SELECT status, channel, COUNT(*) AS count FROM messages WHERE status IN {sql.in_list(len(statuses))} '
            f'AND channel IN {sql.in_list(len(channels))} AND created_at >= ? AND created_at < ? '
            'GROUP BY status, channel', [*statuses, *channels, start, end]):
        period.by_status[MessageStatus(row['status'])] += row['count']
        period.by_channel[Channel(row['channel'])] += row['count']
    billed = sorted(BILLED)
    for row in await sql.execute(
            f'SELECT currency, SUM(cost) AS cost FROM messages WHERE status IN {sql.in_list(len(billed))} '
            "AND created_at >= ? AND created_at < ? AND currency <> '' GROUP BY currency ORDER BY currency",
            [*billed, start, end]):
        period.cost[row['currency']] = _decimal(row['cost'])
    return period


def _decimal(value: Decimal | float | None) -> Decimal:
    """SQLite sums the decimal column as a float, PostgreSQL as an exact numeric."""
    return Decimal(str(value or 0)).quantize(COST_SCALE)


async def per_hour(actor: Actor, hours: int = 24, zone: tzinfo = timezone.utc, at: datetime | None = None
                   ) -> Hourly:
    """Messages sent and delivered in each of the last `hours` hours of `zone` (the current one last): ranges of the
    (sent_at, created_at) and (delivered_at, created_at) indexes, which hold all these queries read."""
    actor.require(Permission.VIEW)
    last = hour_start(at or now(), zone).astimezone(timezone.utc)  # in UTC, where an hour is always 3600 s
    first, end = last - (hours - 1) * HOUR, last + HOUR
    origin = int(first.timestamp())
    rows = await sql.execute(
        f"SELECT 'sent' AS series, {_hours_since('sent_at')} AS hour, COUNT(*) AS count FROM messages "
        'WHERE sent_at >= ? AND sent_at < ? GROUP BY 2 '
        f"UNION ALL SELECT 'delivered', {_hours_since('delivered_at')}, COUNT(*) FROM messages "
        'WHERE delivered_at >= ? AND delivered_at < ? GROUP BY 2', [origin, first, end, origin, first, end])
    counts = {'sent': [0] * hours, 'delivered': [0] * hours}
    for row in rows:
        counts[row['series']][int(row['hour'])] += row['count']
    return Hourly([(first + i * HOUR).astimezone(zone) for i in range(hours)], counts['sent'], counts['delivered'])


def _hours_since(column: str) -> str:
    """Whole hours from a Unix time (the parameter) to the column's timestamp: plain arithmetic on both databases,
    whose date truncation functions differ, and right in zones whose offsets are not whole hours. (Bucketing in
    Python instead would move every timestamp of the window out of the database.)"""
    if sql.is_postgres():
        return f'CAST(floor((extract(epoch FROM {column}) - CAST(? AS BIGINT)) / 3600) AS INTEGER)'
    return f"(CAST(strftime('%s', {column}) AS INTEGER) - ?) / 3600"
