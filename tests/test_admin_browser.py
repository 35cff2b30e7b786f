"""An admin in a real browser: adds an operator, requests a sender name and approves it.

Saves docs/screenshots/users.png and docs/screenshots/senders.png for the documentation."""

import pytest
from helpers import SCREENSHOTS, browser_input, browser_setup_admin, click, click_element, visible
from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

pytestmark = pytest.mark.browser


def element(screen: Screen, xpath: str) -> WebElement:
    """The element at `xpath` once it is displayed (`visible` cannot look for text with quotes)."""
    return WebDriverWait(screen.selenium, 5).until(expected_conditions.visibility_of_element_located((By.XPATH, xpath)))


def sender_row(screen: Screen, name: str) -> WebElement:
    return element(screen, f'//tr[td[normalize-space()="{name}"]]')


def save(screen: Screen, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screen.selenium.save_screenshot(str(SCREENSHOTS / name))


def test_admin_adds_an_operator_and_approves_a_sender_name(screen: Screen) -> None:
    browser_setup_admin(screen)
    screen.open('/settings/users')
    click(screen, 'Add user')
    visible(screen, 'Add a user')
    browser_input(screen, 'Email').send_keys('operator@example.com')
    browser_input(screen, 'Name').send_keys('Olga Operator')
    browser_input(screen, 'Password').send_keys('operator password')
    click(screen, 'Create user')
    visible(screen, 'Added operator@example.com.')
    screen.open('/settings/users')
    visible(screen, 'Olga Operator')
    save(screen, 'users.png')

    screen.open('/settings/senders')
    for name, comment in (('MyShop', 'Registered with all carriers on 1 March'), ('MyBank', '')):
        click(screen, 'Request sender name')
        visible(screen, 'Request a sender name')
        browser_input(screen, 'Sender name').send_keys(name)
        browser_input(screen, 'Comment').send_keys(comment)
        click(screen, 'Submit request')
        sender_row(screen, name)
    sender_row(screen, 'MyShop').find_element(By.XPATH, './/button[contains(., "Approve")]').click()
    click_element(lambda: element(screen, '//div[contains(@class, "q-dialog")]//button[contains(., "Approve")]'))
    visible(screen, 'approved.')
    screen.open('/settings/senders')
    badge = sender_row(screen, 'MyShop').find_element(By.CLASS_NAME, 'q-badge')
    assert badge.text == 'approved' and 'bg-positive' in badge.get_attribute('class')
    assert sender_row(screen, 'MyBank').find_element(By.CLASS_NAME, 'q-badge').text == 'requested'
    save(screen, 'senders.png')
