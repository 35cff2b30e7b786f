"""An admin in a real browser watches the dashboard count the messages the simulator sends and delivers, in the cards
and in the hourly chart, in the browser's time zone. Saves docs/screenshots/dashboard.png."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import ADMIN_EMAIL, SCREENSHOTS, browser_setup_admin, visible
from nicegui import core
from nicegui.testing import Screen
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import SenderName, SenderStatus, Tariff, User
from ui import dashboard

pytestmark = pytest.mark.browser
CHART_TOTALS = '''
const chart = getElement(document.querySelector('.nicegui-echart')).chart;
return chart.getOption().series.map(series => series.data.reduce((sum, n) => sum + n, 0));
'''


def on_server(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run domain code on the server's event loop, where its database connection lives."""
    return asyncio.run_coroutine_threadsafe(coroutine, core.loop).result(timeout=30)


async def send_sms(count: int) -> None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await Tariff.create(channel=Channel.SMS, country='*', price_per_part=Decimal('0.035'), currency='EUR')
    admin = Actor.of(await User.get(email=ADMIN_EMAIL))
    await enqueue.enqueue(admin, SendRequest(
        steps=[{'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}],
        destinations=[Destination(phone=f'+791234567{i:02d}') for i in range(count)]))


def today(screen: Screen, figure: str) -> int:
    """A figure of the Today card (the first of the two), found again when a live refresh replaced it."""
    for _ in range(20):
        try:
            cell = screen.selenium.find_element(By.XPATH,
                                                f'//div[normalize-space()="{figure}"]/following-sibling::*[1]')
            return int(cell.text.replace(',', ''))
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f'the figure {figure} kept changing')


def until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, 'the dashboard did not update'
        time.sleep(0.2)


@pytest.fixture
def browser_in_st_johns(screen: Screen) -> Iterator[None]:
    """The browser's time zone is UTC-03:30 (the driver serves every test: the override ends with this one)."""
    screen.selenium.execute_cdp_cmd('Emulation.setTimezoneOverride', {'timezoneId': 'America/St_Johns'})
    yield
    screen.selenium.execute_cdp_cmd('Emulation.setTimezoneOverride', {'timezoneId': ''})


def test_dashboard_counts_what_the_simulator_sends(screen: Screen, browser_in_st_johns: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, 'MONTH_SECONDS', 0)  # the month's card refreshes with today's here
    browser_setup_admin(screen)
    screen.open('/')
    visible(screen, 'Times in America/St_Johns')
    assert today(screen, 'Total') == 0
    on_server(send_sms(20))
    until(lambda: today(screen, 'Total') == 20 and today(screen, 'In progress') == 0)
    assert today(screen, 'Delivered') + today(screen, 'Failed') == 20  # the simulator delivers about 95 %
    visible(screen, '0.70 EUR')
    until(lambda: screen.selenium.execute_script(CHART_TOTALS) == [20, today(screen, 'Delivered')])
    until(lambda: len(screen.selenium.find_elements(By.XPATH, '//a[normalize-space()="SMS 20"]')) == 2)  # month too
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screen.selenium.save_screenshot(str(SCREENSHOTS / 'dashboard.png'))
