"""An Export button for pages: the file is written in the background while a small dialog shows the progress, then
offers the download. Files go to <data dir>/exports and are deleted an hour later."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from nicegui import ui

from domain.config import settings
from domain.errors import HeraldError, ValidationError
from domain.xlsx import MEDIA_TYPE

KEPT_SECONDS = 3600

Progress = Callable[[int, int], None]
Export = Callable[[Path, Progress], Awaitable[int]]

log = logging.getLogger('herald.export')


def export_button(label: str, run: Export, filename: Callable[[], str]) -> ui.button:
    """A button that runs `run(path, progress)` (which writes the file and returns its row count) and offers the
    file as `filename()`. The page stays usable meanwhile; the button rests until the export ends."""
    async def start() -> None:
        button.disable()
        try:
            await _export(label, run, filename())
        finally:
            button.enable()
    button = ui.button(label, icon='download', on_click=start)
    return button


async def _export(title: str, run: Export, filename: str) -> None:
    path = _exports_dir() / f'{uuid.uuid4().hex}.xlsx'
    # Quasar's positions are top, right, bottom, left or standard; anything else breaks the page's rendering.
    with ui.dialog().props('seamless persistent position=right') as dialog, ui.card().classes('w-96'):
        ui.label(title).classes('text-h6')
        status = ui.label('Preparing the file…')
        bar = ui.linear_progress(value=0, show_value=False)
        with ui.row().classes('w-full justify-end'):
            download = ui.button('Download', icon='download',
                                 on_click=lambda: ui.download.file(path, filename, MEDIA_TYPE))
            close = ui.button('Cancel', on_click=lambda: dialog.close() if task.done() else task.cancel()).props('flat')
    download.set_visibility(False)
    dialog.on_value_change(lambda event: None if event.value else dialog.delete())
    dialog.open()

    def progress(done: int, total: int) -> None:
        bar.value = done / total if total else 1
        status.text = f'{done:,} of {total:,} rows written…'

    task = asyncio.ensure_future(run(path, progress))
    try:
        rows = await task
    except asyncio.CancelledError:
        dialog.close()
        if not task.cancelled():  # the page itself went away
            task.cancel()
            raise
        return
    except Exception as error:  # noqa: BLE001 - shown to the user
        _failed(status, error)
    else:
        bar.value = 1
        status.text = f'{rows:,} rows. The file is ready.'
        download.set_visibility(True)
    close.text = 'Close'


def _failed(status: ui.label, error: Exception) -> None:
    if isinstance(error, ValidationError):
        message = ' '.join(error.errors.values())
    elif isinstance(error, HeraldError):
        message = str(error)
    else:
        log.exception('Export failed', exc_info=error)
        message = f'The export failed: {error}'
    status.text = message
    status.classes('text-negative')


def _exports_dir() -> Path:
    """The exports directory, rid of files older than KEPT_SECONDS."""
    directory = settings().data_dir / 'exports'
    directory.mkdir(parents=True, exist_ok=True)
    limit = time.time() - KEPT_SECONDS
    for old in directory.glob('*.xlsx'):
        with contextlib.suppress(FileNotFoundError):  # another export's clean-up may be quicker
            if old.stat().st_mtime < limit:
                old.unlink()
    return directory
