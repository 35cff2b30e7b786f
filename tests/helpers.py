"""Shared steps of page and browser tests."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from nicegui import ui
from nicegui.testing import Screen, User
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from domain import auth
from domain.auth import Actor
from domain.models import Role

PASSWORD = 'correct horse battery'
ADMIN_EMAIL = 'admin@example.com'
SCREENSHOTS = Path(__file__).resolve().parent.parent / 'docs' / 'screenshots'  # the README's pictures


async def sign_in_as(user: User, role: Role = Role.ADMIN, email: str | None = None) -> None:
    """Create a user of this role and sign in through the login page."""
    email = email or f'{role.value}@example.com'
    await auth.create_user(email, PASSWORD, role)
    await user.open('/login')
    user.find('Email').type(email)
    user.find('Password').type(PASSWORD)
    user.find('Sign in').click()
    await user.should_see('Sign out', retries=20)


def browser_setup_admin(screen: Screen) -> None:
    """First run in the browser: create the admin on /setup and land signed in on the dashboard."""
    screen.open('/setup', timeout=30)  # a loaded machine may take longer than open's 3 s to start the server
    screen.should_contain('Welcome to Herald')
    type_into(screen, 'Name', 'Admin')
    type_into(screen, 'Email', ADMIN_EMAIL)
    type_into(screen, 'Password', PASSWORD)
    type_into(screen, 'Repeat password', PASSWORD)
    click(screen, 'Create administrator')
    visible(screen, 'Notification history')


def browser_input(screen: Screen, label: str) -> WebElement:
    """The <input> or <textarea> of the Quasar field with this label."""
    return screen.selenium.find_element(
        By.XPATH, f'//label[.//div[contains(@class, "q-field__label") and normalize-space()="{label}"]]'
                  f'//*[self::input or self::textarea]')


def replace_text(element: WebElement, text: str) -> None:
    """Type over what the field holds (selenium's clear() is not seen by Vue)."""
    element.send_keys(Keys.CONTROL, 'a')
    element.send_keys(text)


def type_into(screen: Screen, label: str, text: str, timeout: float = 5.0, replace: bool = False) -> None:
    """Type into the field with this label (over its text with `replace`), finding it again if a refresh replaced it
    meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            field = browser_input(screen, label)
            replace_text(field, text) if replace else field.send_keys(text)
            return
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def visible(screen: Screen, text: str, timeout: float = 5.0) -> WebElement:
    """The first displayed element containing `text` (Screen.find stops at the hidden <title>)."""
    deadline = time.monotonic() + timeout
    while True:
        for element in screen.find_all(text):
            with suppress(StaleElementReferenceException):
                if element.is_displayed():
                    return element
        if time.monotonic() > deadline:
            raise AssertionError(f'No visible element contains "{text}"')
        time.sleep(0.1)


def click(screen: Screen, text: str, timeout: float = 5.0) -> None:
    """Click the visible element with `text`."""
    click_element(lambda: visible(screen, text, timeout), timeout)


def click_element(find: Callable[[], WebElement], timeout: float = 5.0) -> None:
    """Click the element `find` returns, again while something else (a dialog still opening) covers it or a refresh
    replaced it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            find().click()
            return
        except (ElementClickInterceptedException, StaleElementReferenceException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def button(screen: Screen, label: str, within: str = '') -> WebElement:
    """The displayed button with this text or aria-label (optionally inside the element matched by `within`)."""
    xpath = (f'{within}//*[self::button or self::a]'
             f'[.//span[normalize-space()="{label}"] or @aria-label="{label}"]')
    return next(e for e in screen.selenium.find_elements(By.XPATH, xpath) if e.is_displayed())


def inputs(screen: Screen, label: str) -> list[WebElement]:
    return screen.selenium.find_elements(
        By.XPATH, f'//label[.//div[contains(@class, "q-field__label") and normalize-space()="{label}"]]//input')


def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = 'the condition') -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'waited {timeout} s for {what}'
        time.sleep(0.1)


def screenshot(screen: Screen, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screen.selenium.save_screenshot(str(SCREENSHOTS / name))


async def make_actor(role: Role, email: str | None = None) -> Actor:
    return Actor.of(await auth.create_user(email or f'{role.value}@example.com', PASSWORD, role))


def table_rows(user: User) -> list[dict]:
    return user.find(ui.table).elements.pop().rows


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (up to 5 s: the machine may be busy) for an event handler that runs in the background to finish."""
    for _ in range(250):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check()
