"""ui/export.py: the Export button's dialog (progress, download, errors, cancel) on a page of its own."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from helpers import eventually, sign_in_as
from nicegui import ui
from nicegui.testing import User

from domain.config import settings
from domain.errors import ValidationError
from domain.models import Role
from domain.xlsx import write_xlsx
from ui.export import KEPT_SECONDS, export_button


def page_with(run) -> None:
    @ui.page('/export-demo')
    def demo() -> None:
        export_button('Export', run, lambda: 'demo.xlsx')


async def test_progress_then_download_and_old_files_go(user: User) -> None:
    release = asyncio.Event()
    written: list[Path] = []

    async def run(path: Path, progress) -> int:
        progress(1, 2)
        await release.wait()
        write_xlsx(path, 'Demo', ['A'], [['x'], ['y']])
        written.append(path)
        progress(2, 2)
        return 2
    page_with(run)
    exports = settings().data_dir / 'exports'
    exports.mkdir(parents=True)
    stale = exports / 'stale.xlsx'
    stale.write_bytes(b'old')
    os.utime(stale, (time.time() - KEPT_SECONDS - 60,) * 2)

    await sign_in_as(user, Role.VIEWER)
    await user.open('/export-demo')
    user.find('Export').click()
    await user.should_see('1 of 2 rows written…')
    assert not stale.exists()
    release.set()
    await user.should_see('2 rows. The file is ready.')
    user.find('Download').click()
    await user.download.next()
    assert written[0].parent == exports and written[0].exists()
    user.find('Close').click()
    await user.should_not_see('The file is ready.')


async def test_errors_are_shown(user: User) -> None:
    async def run(path: Path, progress) -> int:
        raise ValidationError({'report': 'The filters select too many messages.'})
    page_with(run)
    await sign_in_as(user, Role.VIEWER)
    await user.open('/export-demo')
    user.find('Export').click()
    await user.should_see('The filters select too many messages.')


async def test_cancel_stops_the_export(user: User) -> None:
    stopped = asyncio.Event()

    async def run(path: Path, progress) -> int:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.set()
        return 0
    page_with(run)
    await sign_in_as(user, Role.VIEWER)
    await user.open('/export-demo')
    user.find('Export').click()
    await user.should_see('Preparing the file…')
    user.find('Cancel').click()
    await eventually(stopped.is_set)
    await user.should_not_see('Preparing the file…')
