"""Registers every page (NiceGUI's modularization pattern: each module has `create()`)."""
from __future__ import annotations

from . import (
    api_keys_page,
    audit_page,
    channels_page,
    dashboard,
    history_page,
    hlr_page,
    login,
    send_page,
    senders_page,
    tariffs_page,
    tasks_page,
    template_edit,
    templates_page,
    users_page,
)


def create() -> None:
    login.create()
    dashboard.create()
    templates_page.create()
    template_edit.create()
    senders_page.create()
    tariffs_page.create()
    channels_page.create()
    users_page.create()
    audit_page.create()
    history_page.create()
    send_page.create()
    tasks_page.create()
    hlr_page.create()
    api_keys_page.create()
