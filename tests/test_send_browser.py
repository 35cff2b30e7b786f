import asyncio
import os

import pytest
from helpers import browser_input, browser_setup_admin, button, click, inputs, screenshot, until, visible
from nicegui.testing import Screen
from selenium.webdriver.common.by import By

from domain import templates
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.db import close_database, open_database
from domain.models import SenderName, SenderStatus, Tariff

pytestmark = pytest.mark.browser


async def seed_template() -> None:
    """An approved sender, a tariff and a template, written before the server starts."""
    await open_database(os.environ['HERALD_DATABASE_URL'])
    try:
        await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
        await Tariff.create(channel=Channel.SMS, country='*', price_per_part='0.05', currency='EUR')
        await templates.create_template(SYSTEM, templates.TemplateInput(
            name='Order ready', allowed_time_ranges=[('00:00', '24:00')],
            steps=[{'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}, your order is ready'}]))
    finally:
        await close_database()


def test_send_a_template_to_three_recipients(screen: Screen) -> None:
    asyncio.run(seed_template())
    browser_setup_admin(screen)
    screen.open('/send')
    visible(screen, 'No recipients yet')
    browser_input(screen, 'Select template').click()
    click(screen, 'Order ready')
    visible(screen, 'each recipient needs a phone (SMS)')
    for _ in range(3):
        button(screen, 'New recipient').click()
    visible(screen, '3 recipients')
    for field, phone in zip(inputs(screen, 'Phone'), ('+49 30 1234567', '+44 20 7946 0958', '+1 212 555 0123')):
        field.send_keys(phone)
    inputs(screen, 'External ID')[0].send_keys('CRM-1042')
    browser_input(screen, 'name').send_keys('Ann')
    screenshot(screen, 'send.png')

    button(screen, 'Send').click()
    visible(screen, 'Send “Order ready” to 3 recipients?')
    visible(screen, 'Estimated cost: 0.15 EUR')
    click(screen, 'Confirm and send')
    visible(screen, 'Sent: 3 messages to 3 recipients are on their way.')
    link = screen.selenium.find_element(By.LINK_TEXT, 'Open the history of these messages')
    assert '/history?bulk=' in link.get_attribute('href')

    link.click()
    visible(screen, '3 messages')
    visible(screen, '+49301234567')
    until(lambda: statuses(screen) and all(status in ('DELIVERED', 'UNDELIVERED') for status in statuses(screen)),
          timeout=30, what='the simulator to deliver the three messages, shown live')  # no reload in between
    assert 'bulk=' in screen.selenium.current_url


def statuses(screen: Screen) -> list[str]:
    """The status badges of the history table, read in one go (live updates redraw them)."""
    return screen.selenium.execute_script(
        "return [...document.querySelectorAll('.q-table tbody .q-badge')].map(badge => badge.innerText)")
