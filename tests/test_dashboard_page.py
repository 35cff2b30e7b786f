"""The dashboard page: today's and this month's figures with links to the history, the hourly chart, live updates
after status changes and new messages, and listeners that go away with the page."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from helpers import sign_in_as
from nicegui import ui
from nicegui.testing import User
from test_stats import add_message

from domain import delivery, events, stats
from domain.channels import Channel
from domain.delivery import StatusChange
from domain.models import Role
from domain.statuses import MessageStatus
from ui import dashboard

S, C = MessageStatus, Channel
FIGURES = ('total', 'delivered', 'failed', 'in-progress', 'cost')


def text(user: User, marker: str) -> str:
    return user.find(marker=marker).elements.pop().text


def figures(user: User, period: str) -> dict[str, str]:
    return {figure: text(user, f'{period}-{figure}') for figure in FIGURES}


def chart_totals(user: User) -> tuple[int, int]:
    """Messages sent and delivered in the chart's 24 hours."""
    sent, delivered = user.find(ui.echart).elements.pop().options['series']
    return sum(sent['data']), sum(delivered['data'])


async def until(check: Callable[[], bool], seconds: float = 15) -> None:
    """Wait for the page's timer to show a change (it looks every 2 s; this machine is shared and slow)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, 'the page did not update'
        await asyncio.sleep(0.1)


async def test_figures_link_to_the_history_and_follow_changes_live(user: User, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setattr(dashboard, 'MONTH_SECONDS', 0)  # the month refreshes at most every 5 minutes: not in a test
    await sign_in_as(user, Role.VIEWER)
    now = stats.now()
    sms = [await add_message(now, S.SENT, C.SMS, sent_at=now, cost='2.5', currency='RUB') for _ in range(2)]
    await add_message(now, S.DELIVERED, C.VIBER, sent_at=now, delivered_at=now, cost='0.035', currency='EUR')
    await add_message(now, S.ERROR, C.EMAIL, cost='1', currency='EUR')
    await user.open('/')
    await user.should_see('Times in UTC')
    expected = {'total': '4', 'delivered': '1', 'failed': '1', 'in-progress': '2', 'cost': '0.035 EUR, 5.00 RUB'}
    assert figures(user, 'today') == figures(user, 'month') == expected
    assert chart_totals(user) == (3, 1)
    sent = user.find(marker='today-status-SENT').elements.pop()
    assert (sent.text, sent.props['href']) == ('SENT 2', f'/history?status=SENT&from={now.date()}')
    viber = user.find(marker='month-channel-viber').elements.pop()
    assert (viber.text, viber.props['href']) == ('Viber 1', f'/history?channel=viber&from={stats.month_start(now).date()}')

    await delivery.change_status([StatusChange(str(sms[0].id), S.DELIVERED)])
    await until(lambda: text(user, 'today-delivered') == '2' and text(user, 'month-delivered') == '2')
    assert figures(user, 'today')['in-progress'] == '1' and text(user, 'today-status-SENT') == 'SENT 1'
    assert chart_totals(user) == (3, 2)

    created = await add_message(stats.now(), S.QUEUED, C.SMS)
    events.publish([events.MessageChanged(str(created.id), str(created.notification_id), C.SMS, S.QUEUED,
                                          stats.now())])
    await until(lambda: text(user, 'today-total') == '5')
    assert text(user, 'today-channel-sms') == 'SMS 3'


async def test_an_empty_day_says_so(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/')
    await user.should_see('No messages yet.')
    assert figures(user, 'today') == {'total': '0', 'delivered': '0', 'failed': '0', 'in-progress': '0', 'cost': '—'}
    await user.should_see('templates')


async def test_the_page_stops_listening_when_its_client_is_deleted(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    before = len(events._listeners)
    client = await user.open('/')
    assert len(events._listeners) == before + 1
    client.delete()
    assert len(events._listeners) == before


async def test_open_dashboards_share_runs_that_started_after_what_they_wait_for() -> None:
    runs = 0

    async def run() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        return runs
    shared = dashboard.Shared()
    changed = time.monotonic()
    (started, first), (_, second) = await asyncio.gather(shared.get(changed, run), shared.get(changed, run))
    assert first == second == 1 and started > changed
    assert await shared.get(changed, run) == (started, 1)
    assert (await shared.get(started, run))[1] == 2  # a change during the first run: it may not show it
