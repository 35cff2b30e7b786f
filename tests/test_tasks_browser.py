"""Tasks for notifications in a real browser: download the SMS template, fill it, upload it through the file picker,
see the invalid row, create the task, start, pause and resume it while the simulator's delivery reports are on their
way, rename it, and watch it complete live. Saves docs/screenshots/tasks.png."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import (
    browser_input,
    browser_setup_admin,
    button,
    click,
    click_element,
    screenshot,
    type_into,
    until,
    visible,
)
from nicegui import core
from nicegui.testing import Screen, screen_plugin
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from domain.channels import Channel
from domain.models import Tariff

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
settings = { report_delay_ms = 8000 }  # the task runs long enough to pause and resume it
'''
TASKS = '.q-table tbody tr'
# Phone, Sender, Text, External ID (the SMS template's columns)
ROWS = [['+79001230001', 'MyShop', 'Your order 1001 is ready', 'o-1001'],
        ['+79001230002', 'MyShop', 'Your order 1002 is ready', 'o-1002'],
        ['+79001230003', 'MyShop', 'Your order 1003 is ready', 'o-1003'],
        ['12', 'MyShop', 'Your order 1004 is ready', 'o-1004']]


def on_server(coroutine: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run domain code on the server's event loop, where its database connection lives."""
    return asyncio.run_coroutine_threadsafe(coroutine, core.loop).result(timeout=timeout)


def cells(screen: Screen) -> list[str]:
    """The cells of the first task row, read again when a live refresh replaced them meanwhile."""
    while True:
        try:
            return [cell.text for cell in screen.selenium.find_elements(By.CSS_SELECTOR, f'{TASKS}:first-child td')]
        except StaleElementReferenceException:
            continue


def status(screen: Screen) -> str:
    row = cells(screen)
    return row[2] if len(row) > 2 else ''


def fill(template: Path, target: Path) -> None:
    """The downloaded template with its example row replaced by ours."""
    book = openpyxl.load_workbook(template)
    sheet = book.worksheets[0]
    assert [cell.value.rstrip('*') for cell in sheet[1]][:4] == ['Phone', 'Sender', 'Text', 'External ID']
    sheet.delete_rows(2, sheet.max_row)
    for row in ROWS:
        sheet.append(row)
    book.save(target)


def test_a_task_from_the_template_to_completed(screen: Screen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    config = tmp_path / 'herald.toml'
    config.write_text(CONFIG)
    monkeypatch.setenv('HERALD_CONFIG', str(config))
    browser_setup_admin(screen)
    on_server(Tariff.create(channel=Channel.SMS, country='*', price_per_part='0.05', currency='EUR'))
    screen.open('/tasks')
    visible(screen, 'There are no tasks yet.')
    click(screen, 'Add new message sending task')
    type_into(screen, 'Task name', 'Spring sale')
    click(screen, 'English')
    until(lambda: list(screen_plugin.DOWNLOAD_DIR.glob('herald-task-sms-en.xlsx')), timeout=30,
          what='the template download (the first one starts the worker processes)')
    fill(screen_plugin.DOWNLOAD_DIR / 'herald-task-sms-en.xlsx', tmp_path / 'contacts.xlsx')

    screen.selenium.find_element(By.CSS_SELECTOR, 'input[type=file]').send_keys(str(tmp_path / 'contacts.xlsx'))
    visible(screen, 'Rows in the file: 4 · valid: 3 · invalid: 1', timeout=30)
    visible(screen, 'Download invalid rows')
    visible(screen, 'Estimated cost: 0.15 EUR')
    assert '5' in [cell.text for cell in screen.selenium.find_elements(By.CSS_SELECTOR, '.q-dialog tbody td')]
    click(screen, 'Create task')
    until(lambda: status(screen) == 'Created', what='the new task in the list')
    assert cells(screen)[0] == 'Spring sale' and cells(screen)[5] == '3'

    for action, after in (('Start', 'During'), ('Pause', 'Paused'), ('Resume', 'During')):
        click_element(lambda action=action: button(screen, action))  # a live refresh may redraw the row
        until(lambda after=after: status(screen) == after, what=f'{action} to make the task {after}')
    click_element(lambda: button(screen, 'Edit'))
    visible(screen, 'Change message sending task')
    type_into(screen, 'Task name', 'Spring sale 2026', replace=True)
    click(screen, 'Save')
    until(lambda: cells(screen)[0] == 'Spring sale 2026', what='the new name')
    until(lambda: status(screen) == 'Completed', timeout=30, what='the simulator to finish the task, shown live')
    row = cells(screen)
    assert (row[4].strip(), row[5], row[6]) == ('100%', '3', '3'), row
    assert '/tasks' in screen.selenium.current_url
    browser_input(screen, 'Search by name').send_keys('spring')
    until(lambda: 'name=spring' in screen.selenium.current_url, what='the search in the URL')
    screenshot(screen, 'tasks.png')
