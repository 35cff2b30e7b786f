"""The home page. The live dashboard of counts and charts comes with the history issue."""
from __future__ import annotations

from nicegui import ui

from domain.models import SenderName, SenderStatus, Template

from .frame import page_frame


def create() -> None:
    @ui.page('/')
    async def dashboard_page() -> None:
        if not await page_frame('Dashboard'):
            return
        templates = await Template.all().count()
        senders = await SenderName.filter(status=SenderStatus.APPROVED).count()
        with ui.row().classes('gap-4'):
            for label, value, path in (('Templates', templates, '/templates'),
                                       ('Approved sender names', senders, '/settings/senders')):
                with ui.card().classes('cursor-pointer w-56').on('click', lambda p=path: ui.navigate.to(p)):
                    ui.label(label).classes('text-grey-7')
                    ui.label(str(value)).classes('text-h4')
        ui.label('Message statistics and charts: coming soon.').classes('text-grey-7 mt-4')
