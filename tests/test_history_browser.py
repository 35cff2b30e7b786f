"""The Notification history in a real browser: statuses change live while the simulator sends 1,000 messages a
second, and the page keeps answering clicks and filters during the run; the detail dialog and the period picker.
Saves docs/screenshots/history.png."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import SCREENSHOTS, browser_input, browser_setup_admin, click, type_into, until, visible
from nicegui import core
from nicegui.testing import Screen, screen_plugin
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from domain import enqueue
from domain.auth import SYSTEM
from domain.enqueue import Destination, SendRequest
from domain.models import Message
from domain.statuses import MessageStatus

pytestmark = pytest.mark.browser
CONFIG = '''
[[sender_names]]
name = "MyShop"
channel = "sms"

[[providers]]
name = "sms-simulator"
channel = "sms"
provider = "simulator"
rate_per_second = 1000
concurrency = 8
default = true
settings = { report_delay_ms = 300, delivery_rate = 1.0 }  # the export below expects +79001230002 delivered
'''
RUN = 30_000  # messages: about 30 s of sending at 1,000 a second
SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED)
OPTION = '//div[contains(@class, "q-menu")]//div[contains(@class, "q-item") and normalize-space()="{}"]'
STEP = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is {{code}}'}


def on_server(coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run domain code on the server's event loop, where its database connection lives."""
    return asyncio.run_coroutine_threadsafe(coroutine, core.loop).result(timeout=timeout)


async def send(phones: list[str]) -> None:
    for start in range(0, len(phones), 5000):
        await enqueue.enqueue(SYSTEM, SendRequest(steps=[STEP], destinations=[
            Destination(phone=phone, variables={'code': '1234'}) for phone in phones[start:start + 5000]]))


async def count(*statuses: MessageStatus) -> int:
    return await Message.filter(status__in=statuses).count()


def texts(screen: Screen, css: str) -> list[str]:
    """The texts of the elements `css` selects, read again when a live refresh replaced them meanwhile."""
    while True:
        try:
            return [element.text for element in screen.selenium.find_elements(By.CSS_SELECTOR, css)]
        except StaleElementReferenceException:
            continue


def click_first_row(screen: Screen) -> bool:
    """Open the first row's details; False when the live refresh replaced the row under the click."""
    try:
        screen.selenium.find_element(By.CSS_SELECTOR, 'tbody tr').click()
        return True
    except StaleElementReferenceException:
        return False


def statuses(screen: Screen) -> list[str]:
    return texts(screen, 'tbody .q-badge')


def test_history_stays_live_and_responsive_while_1000_messages_a_second_go_out(
        screen: Screen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'herald.toml'
    config.write_text(CONFIG)
    monkeypatch.setenv('HERALD_CONFIG', str(config))
    browser_setup_admin(screen)
    on_server(send(['+79001230001', '+79001230002', '+79001230003']))
    screen.open('/history')
    visible(screen, '3 messages')
    until(lambda: statuses(screen) and all(s in ('DELIVERED', 'UNDELIVERED') for s in statuses(screen)),
          what='the three messages to be delivered, live')

    future = asyncio.run_coroutine_threadsafe(send([f'+7912{i:07d}' for i in range(RUN)]), core.loop)
    until(lambda: on_server(count(*SENT)) > 2000,
          timeout=60, what='the run to start')
    sent_before = on_server(count(*SENT))
    for search, expected in (('+7 912 000-12-34', '+79120001234'), ('1230002', '+79001230002')):
        started = time.monotonic()
        type_into(screen, 'Search by phone', search, replace=True)
        until(lambda: any(expected in row for row in texts(screen, 'tbody tr')), what=f'the search for {search}')
        assert time.monotonic() - started < 10
    click(screen, 'Clear')
    until(lambda: 'search=' not in screen.selenium.current_url, what='Clear')
    browser_input(screen, 'Status').click()
    until(lambda: bool(screen.selenium.find_elements(By.XPATH, OPTION.format('Delivered'))), what='the status menu')
    screen.selenium.find_element(By.XPATH, OPTION.format('Delivered')).click()
    until(lambda: 'status=DELIVERED' in screen.selenium.current_url and set(statuses(screen)) == {'DELIVERED'},
          what='the status filter')
    until(lambda: click_first_row(screen), what='a row to open')
    visible(screen, 'Status timeline')
    click(screen, 'Close')
    sent_meanwhile = on_server(count(*SENT)) - sent_before
    assert sent_meanwhile >= 1000, f'only {sent_meanwhile} messages went out while the page was exercised'
    future.result(timeout=120)
    until(lambda: on_server(count(MessageStatus.QUEUED)) == 0, timeout=120, what='the run to end')
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screen.selenium.save_screenshot(str(SCREENSHOTS / 'history.png'))

    type_into(screen, 'Search by phone', '1230002', replace=True)
    until(lambda: 'search=1230002' in screen.selenium.current_url, what='the search')
    click(screen, 'Export')
    visible(screen, 'The file is ready.', timeout=30)
    click(screen, 'Download')
    until(lambda: list(screen_plugin.DOWNLOAD_DIR.glob('notification-history-*.xlsx')), what='the download')
    [path] = screen_plugin.DOWNLOAD_DIR.glob('notification-history-*.xlsx')
    header, *rows = openpyxl.load_workbook(path).active.iter_rows(values_only=True)
    assert header[:2] == ('Message ID', 'Download ID') and len(rows) == 1  # the page's filters: one delivered message
    assert '+79001230002' in rows[0]
