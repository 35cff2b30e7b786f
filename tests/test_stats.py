"""The dashboard's statistics: counts by status and channel of today and this month, cost per currency, messages sent
and delivered per hour; on messages written with chosen timestamps."""
from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from helpers import make_actor

from domain import stats
from domain.auth import Actor
from domain.channels import Channel
from domain.models import Message, Notification, Role
from domain.statuses import MessageStatus

S, C = MessageStatus, Channel
UTC = timezone.utc
AT = datetime(2026, 3, 15, 12, 30, tzinfo=UTC)
_recipients = itertools.count()


async def add_message(created_at: datetime, status: MessageStatus = S.QUEUED, channel: Channel = C.SMS, *,
                      sent_at: datetime | None = None, delivered_at: datetime | None = None, cost: str = '0',
                      currency: str = '') -> Message:
    """A message as the engine leaves it, with the given timestamps."""
    notification = await Notification.create(bulk_id='stats', created_at=created_at)
    message = await Message.create(
        notification=notification, bulk_id='stats', recipient=f'+7912{next(_recipients):07d}', channel=channel,
        status=status, created_at=created_at, sent_at=sent_at, delivered_at=delivered_at, cost=Decimal(cost),
        currency=currency)
    assert message.created_at == created_at
    return message


@pytest.fixture
async def viewer(db) -> Actor:
    """Statistics are for every signed-in role: the tests read them as a viewer."""
    return await make_actor(Role.VIEWER)


async def test_today_and_this_month_by_status_channel_and_cost(viewer: Actor) -> None:
    today = stats.day_start(AT)
    for status, channel, cost, currency in (
            (S.DELIVERED, C.SMS, '2.5', 'RUB'), (S.DELIVERED, C.SMS, '2.5', 'RUB'), (S.READ, C.VIBER, '1', 'EUR'),
            (S.UNDELIVERED, C.VIBER, '1', 'EUR'), (S.EXPIRED, C.VIBER, '1.0005', 'EUR'),
            (S.ERROR, C.EMAIL, '0.5', 'EUR'),  # never taken by a provider: not billed
            (S.QUEUED, C.SMS, '2.5', 'RUB'), (S.SENT, C.SMS, '2.5', 'RUB'), (S.CREATED, C.EMAIL, '0', '')):
        await add_message(AT - timedelta(minutes=5), status, channel, cost=cost, currency=currency)
    await add_message(today, S.SKIPPED, C.EMAIL, cost='3', currency='EUR')  # the first moment of today
    await add_message(today - timedelta(microseconds=1), S.DELIVERED, C.SMS, cost='2.5', currency='RUB')
    await add_message(stats.month_start(AT), S.DELIVERED, C.TELEGRAM, cost='0.25', currency='USD')
    await add_message(stats.month_start(AT) - timedelta(seconds=1), S.DELIVERED, C.SMS, cost='9', currency='RUB')
    await add_message(today + timedelta(days=1), S.QUEUED, C.SMS)  # tomorrow: this month, not today

    day = await stats.today(viewer, at=AT)
    assert (day.start, day.end) == (today, today + timedelta(days=1))
    assert day.by_status == Counter({S.DELIVERED: 2, S.READ: 1, S.UNDELIVERED: 1, S.EXPIRED: 1, S.ERROR: 1,
                                     S.QUEUED: 1, S.SENT: 1, S.CREATED: 1, S.SKIPPED: 1})
    assert day.by_channel == Counter({C.SMS: 4, C.VIBER: 3, C.EMAIL: 3})
    assert (day.total, day.delivered, day.failed, day.in_progress) == (10, 3, 3, 3)
    assert day.cost == {'EUR': Decimal('3.0005'), 'RUB': Decimal('7.5')}
    assert list(day.cost) == ['EUR', 'RUB']

    month = await stats.this_month(viewer, at=AT)
    assert (month.start, month.end) == (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    assert month.by_status == day.by_status + Counter({S.DELIVERED: 2, S.QUEUED: 1})
    assert month.by_channel == day.by_channel + Counter({C.SMS: 2, C.TELEGRAM: 1})
    assert month.cost == {'EUR': Decimal('3.0005'), 'RUB': Decimal('10'), 'USD': Decimal('0.25')}


async def test_periods_are_days_and_months_of_the_zone(viewer: Actor) -> None:
    new_year_in_moscow = datetime(2027, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=3)))  # 22:00 UTC on Dec 31
    month = await stats.this_month(viewer, at=new_year_in_moscow)
    assert (month.start, month.end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    day = await stats.today(viewer, ZoneInfo('Europe/Moscow'), at=new_year_in_moscow)
    assert day.start == datetime(2026, 12, 31, 21, tzinfo=UTC) and day.total == 0 and day.cost == {}
    spring_forward = await stats.today(viewer, ZoneInfo('Europe/Berlin'), at=datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert spring_forward.end.astimezone(UTC) - spring_forward.start.astimezone(UTC) == timedelta(hours=23)


async def test_days_and_hours_of_a_zone_half_an_hour_off_utc(viewer: Actor) -> None:
    kolkata = ZoneInfo('Asia/Kolkata')  # UTC+05:30: AT is 18:00 there
    midnight = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)
    await add_message(midnight, S.DELIVERED, sent_at=AT - timedelta(minutes=1), delivered_at=AT)
    await add_message(midnight - timedelta(microseconds=1), S.DELIVERED, sent_at=AT, delivered_at=AT)
    day = await stats.today(viewer, kolkata, at=AT)
    assert (day.start, day.total) == (midnight, 1)
    hourly = await stats.per_hour(viewer, 24, kolkata, at=AT)
    assert hourly.hours[-1] == datetime(2026, 3, 15, 18, tzinfo=kolkata) and hourly.hours[0].hour == 19
    assert (hourly.sent[-2:], hourly.delivered[-2:]) == ([1, 1], [0, 2])
    berlin = await stats.per_hour(viewer, 24, ZoneInfo('Europe/Berlin'), at=datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert [hour.hour for hour in berlin.hours] == [*range(14, 24), 0, 1, *range(3, 15)]  # no 02:00 that night


async def test_sent_and_delivered_per_hour(viewer: Actor) -> None:
    hour = stats.hour_start(AT)  # 12:00, the last of the 24 hours; the first is 13:00 yesterday
    first = hour - timedelta(hours=23)
    await add_message(AT - timedelta(minutes=20), S.DELIVERED, sent_at=AT - timedelta(minutes=19),
                      delivered_at=AT - timedelta(minutes=10, microseconds=-123456))
    await add_message(hour - timedelta(seconds=2), S.DELIVERED, sent_at=hour - timedelta(seconds=1),
                      delivered_at=hour)  # sent in the 11:00 hour, delivered in the 12:00 one
    await add_message(first + timedelta(minutes=4), S.SENT, sent_at=first + timedelta(minutes=5))
    await add_message(first - timedelta(minutes=10), S.READ, sent_at=first - timedelta(minutes=1),
                      delivered_at=first + timedelta(minutes=1))  # sent before the window, delivered in it
    await add_message(AT - timedelta(hours=40), S.UNDELIVERED, sent_at=AT - timedelta(hours=20))  # 16:00 yesterday
    await add_message(AT - timedelta(days=3), S.DELIVERED, sent_at=AT - timedelta(hours=1),
                      delivered_at=AT - timedelta(minutes=59))  # a send scheduled days ahead: 11:30 and 11:31
    await add_message(AT - timedelta(minutes=1), S.QUEUED)
    await add_message(AT - timedelta(days=2), S.DELIVERED, sent_at=first - timedelta(seconds=1),
                      delivered_at=first - timedelta(microseconds=1))  # before the window

    hourly = await stats.per_hour(viewer, 24, at=AT)
    assert hourly.hours == [first + timedelta(hours=i) for i in range(24)]
    assert {i: n for i, n in enumerate(hourly.sent) if n} == {0: 1, 3: 1, 22: 2, 23: 1}
    assert {i: n for i, n in enumerate(hourly.delivered) if n} == {0: 1, 22: 1, 23: 2}
    earlier = await stats.per_hour(viewer, 3, at=AT - timedelta(hours=2))  # 08:00 to 11:00: nothing sent then
    assert (earlier.sent, earlier.delivered) == ([0, 0, 0], [0, 0, 0])
