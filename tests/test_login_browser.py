import pytest
from helpers import ADMIN_EMAIL, PASSWORD, browser_input, browser_setup_admin, click, visible
from nicegui.testing import Screen

pytestmark = pytest.mark.browser


def test_first_run_then_sign_out_and_in(screen: Screen) -> None:
    browser_setup_admin(screen)
    click(screen, ADMIN_EMAIL)
    click(screen, 'Sign out')
    visible(screen, 'Notification center')
    browser_input(screen, 'Email').send_keys(ADMIN_EMAIL)
    browser_input(screen, 'Password').send_keys('wrong password')
    click(screen, 'Sign in')
    visible(screen, 'Wrong email or password.')
    browser_input(screen, 'Password').send_keys(PASSWORD)
    click(screen, 'Sign in')
    visible(screen, 'Notification history')
