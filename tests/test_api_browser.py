"""An admin in a real browser: creates an API key, copies it once and uses it; the API's docs render offline.

Saves docs/screenshots/api-keys.png and docs/screenshots/api-docs.png for the documentation."""
import json
import urllib.request

import pytest
from helpers import browser_setup_admin, click, screenshot, type_into, until, visible
from nicegui.testing import Screen
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.browser


def api_get(screen: Screen, path: str, key: str) -> dict:
    request = urllib.request.Request(f'{screen.url}{path}', headers={'Authorization': f'Bearer {key}'})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_admin_creates_an_api_key_and_a_client_uses_it(screen: Screen) -> None:
    browser_setup_admin(screen)
    screen.open('/settings/api-keys')
    click(screen, 'New API key')
    type_into(screen, 'Name', 'CRM')
    click(screen, 'Create key')
    visible(screen, 'Copy the key now')
    secret = screen.selenium.find_element(By.XPATH, '//div[contains(@class, "q-dialog")]//*[contains(., "hk_")]'
                                                    '[contains(@class, "font-mono")]').text.strip()
    assert secret.startswith('hk_') and ' ' not in secret
    assert api_get(screen, '/api/v1/templates', secret) == {'count': 0, 'items': []}
    click(screen, 'Done')
    screen.open('/settings/api-keys')
    row = screen.selenium.find_element(By.XPATH, '//tr[td[normalize-space()="CRM"]]')
    assert secret not in screen.selenium.page_source, 'the key is shown only once'
    until(lambda: 'active' in row.text, what='the key listed as active')
    screenshot(screen, 'api-keys.png')

    screen.open('/api/docs')
    visible(screen, 'Herald API', timeout=10)  # drawn by Swagger UI, from Herald's own copy of its scripts
    visible(screen, 'Send Messages')  # POST /api/v1/messages' summary
    screenshot(screen, 'api-docs.png')
