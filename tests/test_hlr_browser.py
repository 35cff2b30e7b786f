from pathlib import Path

import openpyxl
import pytest
from helpers import browser_input, browser_setup_admin, button, screenshot, type_into, until, visible
from nicegui.testing import Screen, screen_plugin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from domain import hlr

pytestmark = pytest.mark.browser


def table_phones(screen: Screen) -> list[str]:
    """The first column, read in one go (the table is redrawn while it is being searched)."""
    return screen.selenium.execute_script(
        "return [...document.querySelectorAll('.q-table tbody tr td:first-child')].map(td => td.innerText)"
        ".filter(text => text)")


def downloaded(directory: Path) -> list[Path]:
    return [path for path in directory.glob('*.xlsx')] if directory.exists() else []


def test_check_three_numbers_search_and_export(screen: Screen) -> None:
    browser_setup_admin(screen)
    screen.open('/hlr')
    visible(screen, 'No phone numbers have been checked yet.')
    type_into(screen, 'Phone numbers', '+7 900 123-45-67\n8 (495) 123-45-67\nnot a number')
    button(screen, 'Check').click()
    visible(screen, 'Checked 3 number(s): 2 valid, 1 invalid.')
    until(lambda: table_phones(screen) == ['+74951234567', '+79001234567', 'not a number'])
    visible(screen, 'T2')
    visible(screen, 'Moscow, RU')
    visible(screen, 'INVALID')
    visible(screen, 'not a phone number')
    screenshot(screen, 'hlr.png')

    type_into(screen, 'Search by phone', '495')
    until(lambda: table_phones(screen) == ['+74951234567'])
    until(lambda: 'search=495' in screen.selenium.current_url)

    directory = screen_plugin.DOWNLOAD_DIR
    button(screen, 'Export').click()
    until(lambda: len(downloaded(directory)) == 1, timeout=15)
    path = downloaded(directory)[0]
    assert path.name.startswith('hlr-checks-')
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert list(rows[0]) == hlr.EXPORT_HEADERS
    assert [row[:7] for row in rows[1:]] == [('+74951234567', 'VALID', None, 'fixed line', None, 'Moscow', 'RU')]

    browser_input(screen, 'Search by phone').send_keys(Keys.CONTROL, 'a', Keys.BACKSPACE)
    until(lambda: len(table_phones(screen)) == 3)
    browser_input(screen, 'Period').click()
    for _ in range(2):  # a range of one day: today to today
        until(lambda: any(e.is_displayed() for e in screen.selenium.find_elements(By.CSS_SELECTOR, '.q-date__today')))
        screen.selenium.find_element(By.CSS_SELECTOR, '.q-date__today').click()
    until(lambda: 'date_from=' in screen.selenium.current_url and 'date_to=' in screen.selenium.current_url)
    until(lambda: len(table_phones(screen)) == 3)
    button(screen, 'Clear').click()
    until(lambda: 'date_from=' not in screen.selenium.current_url)
