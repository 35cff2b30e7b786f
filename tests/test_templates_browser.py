from pathlib import Path

import pytest
from helpers import (
    browser_input,
    browser_setup_admin,
    button,
    click,
    inputs,
    replace_text,
    screenshot,
    type_into,
    until,
    visible,
)
from nicegui.testing import Screen

pytestmark = pytest.mark.browser
CONFIG = '''
[[sender_names]]
name = "MyShop"
channel = "sms"

[[tariffs]]
channel = "sms"
country = "*"
price_per_part = 0.05
currency = "EUR"
'''


def test_create_edit_search_and_delete_a_template(screen: Screen, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'herald.toml'
    config.write_text(CONFIG)
    monkeypatch.setenv('HERALD_CONFIG', str(config))
    browser_setup_admin(screen)
    screen.open('/templates')
    visible(screen, 'There are no templates yet.')
    click(screen, 'Create a notification template')
    visible(screen, 'Message sent time')
    browser_input(screen, 'Template name').send_keys('Order ready')
    replace_text(inputs(screen, 'To')[0], '12:00')
    button(screen, 'Add a time range').click()
    screen.wait(0.5)
    replace_text(inputs(screen, 'From')[1], '14:00')
    replace_text(inputs(screen, 'To')[1], '18:00')
    button(screen, 'Add').click()
    visible(screen, '1. SMS')
    browser_input(screen, 'Text').send_keys('Hello {{name}}, your order {{order}} is ready')
    visible(screen, 'Variables: name, order · GSM-7 · 1 part(s)')
    visible(screen, 'cost per recipient: 0.05 EUR')
    button(screen, 'Create').click()

    visible(screen, 'Create a notification template')
    visible(screen, 'SMS')
    visible(screen, '09:00–12:00, 14:00–18:00 (UTC)')
    click(screen, 'Name')
    until(lambda: 'sort=name&desc=false' in screen.selenium.current_url)

    button(screen, 'Edit').click()
    visible(screen, 'Message templates by channel')
    replace_text(browser_input(screen, 'Template name'), 'Order ready v2')
    browser_input(screen, 'Channel').click()
    click(screen, 'Email')
    button(screen, 'Add').click()
    visible(screen, '2. Email')
    browser_input(screen, 'From address').send_keys('shop@example.com')
    browser_input(screen, 'Subject').send_keys('Your order {{order}}')
    browser_input(screen, 'Text body').send_keys('Hello {{name}}, your order {{order}} is ready.')
    visible(screen, 'Variables: order, name')
    assert not screen.find_all('Variables: order, name, order')
    screen.selenium.set_window_size(1400, 1700)
    screen.selenium.execute_script('window.scrollTo(0, 0)')
    screenshot(screen, 'template-edit.png')
    screen.selenium.set_window_size(1400, 1000)
    button(screen, 'Save').click()
    visible(screen, 'Order ready v2')
    visible(screen, 'SMS → Email')
    screenshot(screen, 'templates.png')

    type_into(screen, 'Search by name or ID', 'nothing like it')
    visible(screen, 'No templates match your search.')
    assert 'search=nothing' in screen.selenium.current_url
    click(screen, 'Clear')
    visible(screen, 'Order ready v2')
    type_into(screen, 'Search by name or ID', 'V2')
    visible(screen, 'Order ready v2')

    button(screen, 'Delete').click()
    visible(screen, 'Delete the template “Order ready v2”?')
    button(screen, 'Delete', within='//div[contains(@class, "q-dialog")]').click()
    visible(screen, 'No templates match your search.')
    click(screen, 'Clear')
    visible(screen, 'There are no templates yet.')
