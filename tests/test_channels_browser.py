"""An admin in a real browser adds an SMTP route through the dialog. Saves docs/screenshots/channels.png."""

import pytest
from helpers import SCREENSHOTS, browser_input, browser_setup_admin, click, click_element, visible
from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

pytestmark = pytest.mark.browser


def element(screen: Screen, xpath: str) -> WebElement:
    return WebDriverWait(screen.selenium, 5).until(expected_conditions.element_to_be_clickable((By.XPATH, xpath)))


def choose(screen: Screen, label: str, option: str) -> None:
    """Open the Quasar select with this label and pick an option from its menu."""
    browser_input(screen, label).click()
    element(screen, f'//div[contains(@class, "q-menu")]//div[contains(@class, "q-item")]'
                    f'[normalize-space()="{option}"]').click()
    WebDriverWait(screen.selenium, 5).until(expected_conditions.invisibility_of_element_located(
        (By.XPATH, '//div[contains(@class, "q-menu")]')))


def test_admin_adds_an_smtp_route(screen: Screen) -> None:
    browser_setup_admin(screen)
    screen.open('/settings/channels')
    visible(screen, 'simulator-email')
    click(screen, 'Add route')
    visible(screen, 'Add a route')
    browser_input(screen, 'Name').send_keys('mail')
    choose(screen, 'Channel', 'Email')
    choose(screen, 'Provider', 'smtp')
    browser_input(screen, 'Server *').send_keys('mail.example.com')
    browser_input(screen, 'User name').send_keys('herald')
    browser_input(screen, 'Password').send_keys('a secret')
    browser_input(screen, 'Default sender address').send_keys('shop@example.com')
    click(screen, 'Default route of its channel')
    click(screen, 'Save route')
    visible(screen, 'saved.')
    row = element(screen, '//tr[td[normalize-space()="mail"]]')
    assert [cell.text for cell in row.find_elements(By.TAG_NAME, 'td')][1:3] == ['Email', 'smtp']
    assert row.find_elements(By.CSS_SELECTOR, 'td .q-icon[aria-label="Default"]')
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screen.selenium.save_screenshot(str(SCREENSHOTS / 'channels.png'))


def test_admin_sends_a_test_message_through_a_route_and_sees_its_status(screen: Screen) -> None:
    browser_setup_admin(screen)
    screen.open('/settings/channels')
    visible(screen, 'simulator-telegram')
    click_element(lambda: element(screen, '//tr[td[normalize-space()="simulator-telegram"]]'
                                          '//button[@aria-label="Send test message"]'))
    visible(screen, 'Send a test message through')
    browser_input(screen, 'Telegram chat ID').send_keys('123456789')
    click_element(lambda: element(screen, '//div[contains(@class, "q-dialog")]//button[normalize-space()="Send"]'))
    visible(screen, 'Test message: ', timeout=15)
    row = element(screen, '//tr[td[normalize-space()="simulator-telegram"]]')
    assert 'Healthy' in row.text
