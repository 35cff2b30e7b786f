"""Several processes in a real browser: the Notification history served by a web process (which dispatches
nothing) shows live, without a reload, the status changes a separate worker process makes on the same PostgreSQL
database (through domain/event_bridge.py)."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from conftest import BACKEND
from helpers import browser_setup_admin, until
from herald_process import start_herald
from nicegui import core
from nicegui.testing import Screen
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from domain import enqueue
from domain.auth import SYSTEM
from domain.config import settings
from domain.enqueue import Destination, SendRequest

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(BACKEND != 'postgres', reason='several processes share a PostgreSQL database')]
CONFIG = '''
[[sender_names]]
name = "MyShop"
channel = "sms"

[[providers]]
name = "sms-simulator"
channel = "sms"
provider = "simulator"
default = true
settings = { report_delay_ms = 1500, delivery_rate = 1.0 }
'''


def on_server(coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run domain code on the in-process server's event loop, where its database connection lives."""
    return asyncio.run_coroutine_threadsafe(coroutine, core.loop).result(timeout=timeout)


def statuses(screen: Screen) -> list[str]:
    """The status badges of the history table, read again when a live refresh replaced them meanwhile."""
    while True:
        try:
            return [badge.text for badge in screen.selenium.find_elements(By.CSS_SELECTOR, 'tbody .q-badge')]
        except StaleElementReferenceException:
            continue


def test_history_shows_live_the_statuses_another_process_sets(
        screen: Screen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'herald.toml'
    config.write_text(CONFIG)
    monkeypatch.setenv('HERALD_CONFIG', str(config))
    monkeypatch.setenv('HERALD_ROLE', 'web')  # read when the screen's server starts, at its first page
    browser_setup_admin(screen)
    assert not settings().dispatches
    on_server(enqueue.enqueue(SYSTEM, SendRequest(
        steps=[{'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}],
        destinations=[Destination(phone='+79001230001')])))
    screen.open('/history')
    until(lambda: statuses(screen) == ['QUEUED'], what='the message waiting: this process does not send')
    screen.selenium.execute_script('window.heraldNotReloaded = true')

    worker = start_herald(os.environ['HERALD_DATABASE_URL'], tmp_path / 'worker', role='worker', config=config)
    try:
        worker.wait_ready()
        seen: set[str] = set()
        until(lambda: seen.update(statuses(screen)) or 'DELIVERED' in seen, timeout=60,
              what="the worker's statuses to show on the page")
        assert seen <= {'QUEUED', 'SENT', 'DELIVERED'} and statuses(screen) == ['DELIVERED']
        assert screen.selenium.execute_script('return window.heraldNotReloaded === true')
    finally:
        worker.stop()
