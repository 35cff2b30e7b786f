"""The Excel report of the notification history (manual: "Viewing information about sent notifications").

The report is read and written by a process of its own per export (domain/report_process.py), which reports its
progress through a pipe: the event loop only awaits that progress, so other users' pages stay responsive during a
100,000-row export."""
from __future__ import annotations

import asyncio
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

from . import sql
from .auth import Actor, Permission
from .config import settings
from .errors import ValidationError
from .history import HistoryFilter, where, zone_info
from .xlsx import MAX_ROWS

HEADERS = {
    'en': ['Message ID', 'Download ID', 'Group ID', 'Delivery ID', 'Message delivery status', 'Status description',
           'Send channel', 'Sender', 'Recipient', 'Message text', 'Message cost', 'Currency',
           'Cellular network operator', 'Message template ID', 'Message template name', 'Variables',
           'Number of message parts', 'Number of views and clicks Email', 'Short link',
           'Number of clicks on the link', 'Date of message registration in the system', 'Sent date',
           'Delivery status received date', 'Send start date (for DELAYED messages)', 'End date of delivery'],
    'ru': ['ID сообщения', 'ID загрузки', 'ID группы', 'ID доставки', 'Статус доставки сообщения', 'Описание статуса',
           'Канал отправки', 'Отправитель', 'Получатель', 'Текст сообщения', 'Стоимость сообщения', 'Валюта',
           'Оператор сотовой связи', 'ID шаблона сообщения', 'Название шаблона сообщения', 'Переменные',
           'Количество частей сообщения', 'Количество просмотров и переходов Email', 'Короткая ссылка',
           'Количество переходов по ссылке', 'Дата регистрации сообщения в системе', 'Дата отправки',
           'Дата получения статуса о доставке', 'Дата начала отправки (для DELAYED сообщений)',
           'Дата окончания доставки'],
}
SHEET_TITLES = {'en': 'Notification history', 'ru': 'История уведомлений'}

ROOT = Path(__file__).resolve().parent.parent
Progress = Callable[[int, int], None]


async def export_history(actor: Actor, filters: HistoryFilter, path: Path, language: str = 'en',
                         progress: Progress | None = None) -> int:
    """Write the messages the history filters select, oldest first, to an xlsx file at `path`; returns how many.
    `progress(done, total)` is called as chunks are written."""
    actor.require(Permission.VIEW)
    language = language if language in HEADERS else 'en'
    clause, params = where(filters)
    total = (await sql.execute(f'SELECT count(*) AS n FROM messages m WHERE {clause}', params))[0]['n']
    if total >= MAX_ROWS:
        raise ValidationError({'report': f'The filters select {total:,} messages; an Excel sheet holds at most '
                                         f'{MAX_ROWS - 1:,}. Choose a shorter period or more filters.'})
    job = {'database_url': settings().database_url, 'clause': clause, 'params': params, 'path': str(path),
           'title': SHEET_TITLES[language], 'headers': HEADERS[language], 'zone': zone_info(filters.zone),
           'public_url': settings().public_url}
    process = await asyncio.create_subprocess_exec(sys.executable, '-m', 'domain.report_process', cwd=ROOT,
                                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        process.stdin.write(pickle.dumps(job))
        await process.stdin.drain()
        process.stdin.close()
        async for line in process.stdout:
            kind, _, value = line.decode().rstrip('\n').partition(' ')
            if kind not in ('progress', 'done', 'error'):
                continue
            if kind == 'error':
                raise RuntimeError(f'The report could not be written: {value}')
            done = int(value)
            if progress:
                progress(done, max(done, total))  # messages created meanwhile may join the period
            if kind == 'done':
                return done
        raise RuntimeError('The report process stopped unexpectedly.')
    except BaseException:
        if process.returncode is None:
            process.kill()
        path.unlink(missing_ok=True)
        raise
    finally:
        await process.wait()
