"""The history's Excel report on SQLite: `domain.reports.export_history` of N messages with every column filled.

    .venv/bin/python bench/export.py [--messages 100000] [--database PATH]

Fills a fresh database (not timed; `--database` keeps and reuses it) with messages whose every report column holds
a realistic value (templates, variables, group and flow ids, costs, networks, short links, all dates), then times
the export of all of them and prints one JSON object: rows, seconds, rows_per_s, peak_rss_mb (the largest
ru_maxrss of this process and of its children, the report process included; a child's figure also counts the pages
it shares with this process between fork and exec), max_loop_lag_ms (the worst overshoot of a task sleeping 10 ms in
a loop during the export; idle_max_loop_lag_ms is the same over 5 s without an export: this machine's noise) and,
as the baselines of the same run on a sample of `--sample` of the same rows already turned into cells:
openpyxl_rows_per_s (openpyxl's write-only mode) and xlsx_writer_rows_per_s (domain/xlsx.py alone, in this
process), with ratio_to_openpyxl (the export's rows_per_s over openpyxl's)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bulk import bulk_connection  # noqa: E402
from domain import report_process, reports, sql  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.config import reload_settings  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from domain.history import HistoryFilter, where  # noqa: E402
from domain.statuses import MessageStatus as S  # noqa: E402
from domain.xlsx import write_xlsx  # noqa: E402

DAYS = 30
BATCH = 5_000  # rows per insert while filling: keeps this process small before the export is measured
CHANNELS = [('sms', 60), ('email', 20), ('viber', 12), ('whatsapp', 5), ('telegram', 3)]
STATUSES = [(S.DELIVERED, 70), (S.READ, 4), (S.UNDELIVERED, 6), (S.ERROR, 2), (S.SENT, 4), (S.PENDING, 3),
            (S.QUEUED, 2), (S.DELAYED, 2), (S.EXPIRED, 2), (S.SKIPPED, 3), (S.CANCELED, 1), (S.CREATED, 1)]
NETWORKS = ['MTS', 'MegaFon', 'Beeline', 'Tele2', 'Yota', '']
TEXTS = ['Your code is {code}. Do not share it with anyone.',
         'Ваш код подтверждения: {code}. Никому не сообщайте его.',
         'Hello {name}! Your order #{order} has shipped and will arrive tomorrow. '
         'Track it: https://shop.example/t/{order}',
         'Здравствуйте, {name}! Заказ №{order} передан в доставку. Оплата при получении: 1 490 ₽. '
         'Вопросы: 8 800 555-35-35']
MOSCOW = ZoneInfo('Europe/Moscow')
_UNSENT = {S.QUEUED, S.DELAYED, S.CREATED, S.SKIPPED, S.CANCELED}


def _weighted(pairs: list[tuple], count: int, rng: random.Random) -> list:
    values, weights = zip(*pairs)
    return rng.choices(values, weights, k=count)


def fill(path: Path, count: int) -> None:
    """`count` messages, one notification each, over the last DAYS days, written with plain sqlite3 in the order they
    were created (as Herald writes them: the table's order follows created_at)."""
    rng = random.Random(5)
    now = datetime.now(timezone.utc)
    with bulk_connection(path) as connection:
        names = ('Login code', 'Order shipped', 'Доставка заказа', 'Promo')
        templates = [(str(uuid.uuid4()), name) for name in names]
        connection.executemany(
            'INSERT INTO templates (id, name, allowed_time_ranges, time_zone_mode, time_zone, steps, use_short_links, '
            "created_at, updated_at) VALUES (?, ?, '[]', 'fixed', 'UTC', '[]', 0, ?, ?)",
            [(id_, name, str(now), str(now)) for id_, name in templates])
        link_id = 0
        first, step = now - timedelta(days=DAYS), DAYS * 86400 / count
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            notifications, messages, links = [], [], []
            for i, channel, status in zip(range(start, start + size), _weighted(CHANNELS, size, rng),
                                          _weighted(STATUSES, size, rng)):
                created = first + timedelta(seconds=(i + rng.random()) * step)  # rows are written as time goes by
                notification_id, message_id = sql.new_id(), sql.new_id()
                phone = f'+79{(i * 7919) % 10 ** 9:09d}'  # distinct per message, as (bulk, recipient, channel) must be
                name, order = rng.choice(['Anna', 'Иван', 'Olga', 'Пётр']), rng.randrange(10 ** 6)
                code = rng.randrange(10 ** 4)
                text = rng.choice(TEXTS).format(code=code, name=name, order=order)
                parts = len(text) // 70 + 1
                template_id = rng.choice(templates)[0] if rng.random() < 0.6 else None
                variables = json.dumps({'code': code, 'name': name, 'order': order}, ensure_ascii=False)
                sent = created + timedelta(seconds=rng.uniform(1, 60)) if status not in _UNSENT else None
                delivered = (sent + timedelta(seconds=rng.uniform(1, 600))
                             if status in (S.DELIVERED, S.READ) else None)
                ended = delivered or (sent + timedelta(minutes=5) if sent and status.is_terminal else None)
                due = created + timedelta(hours=rng.uniform(1, 10)) if status is S.DELAYED else created
                email = channel == 'email'
                recipient = f'user{i}@example.com' if email else phone
                notifications.append((notification_id, f'bulk-{start // BATCH}', f'group-{rng.randrange(100)}',
                                      f'flow-{rng.randrange(1000)}', template_id, phone, variables, str(created)))
                messages.append((message_id, notification_id, f'bulk-{start // BATCH}', channel,
                                 'shop@example.com' if email else 'HERALD', recipient,
                                 f'Order {order}' if email else '', text, parts,
                                 f'{rng.choice([0.045, 0.05, 0.3, 1.2]) * parts:.4f}',
                                 'EUR', status.value, status.description, '' if email else rng.choice(NETWORKS),
                                 rng.randrange(5) if email else 0, rng.randrange(3) if email else 0, str(created),
                                 str(created), str(due), str(sent) if sent else None,
                                 str(delivered) if delivered else None, str(ended) if ended else None))
                if rng.random() < 0.3:
                    link_id += 1
                    links.append((link_id, f'{link_id:06x}', f'https://shop.example/t/{order}', message_id,
                                  rng.randrange(4), str(created), str(created)))
            connection.executemany(
                'INSERT INTO notifications (id, bulk_id, group_id, flow_id, template_id, phone, variables, created_at, '
                "allowed_time_ranges, time_zone, use_short_links) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', 'UTC', 0)",
                notifications)
            connection.executemany(
                'INSERT INTO messages (id, notification_id, bulk_id, channel, sender, recipient, subject, text, parts, '
                'cost, currency, status, status_description, network, email_opens, email_clicks, created_at, '
                'updated_at, due_at, sent_at, delivered_at, ended_at, step_index, provider, html, params, attempt, '
                'required, '
                "handed_over, in_doubt, short_link_clicks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?, ?, ?, 0, 'simulator', '', '{}', 1, 0, 0, 0, 0)", messages)
            connection.executemany(
                'INSERT INTO short_links (id, code, target, message_id, clicks, created_at, updated_at) '
                'VALUES (?, ?, ?, ?, ?, ?, ?)', links)
            connection.commit()


async def max_lag_during(work: Awaitable[Any]) -> tuple[Any, float]:
    """What `work` returns, and the worst overshoot (ms) of a task sleeping 10 ms in a loop meanwhile."""
    lag = 0.0
    running = True

    async def ticker() -> None:
        nonlocal lag
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lag = max(lag, time.perf_counter() - started - 0.01)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    result = await work
    running = False
    await task
    return result, round(lag * 1000, 1)


async def timed_export(path: Path) -> dict:
    """The export of every message, the worst event-loop lag meanwhile, and the worst lag of an idle loop for 5 s
    just before (what this machine's load alone causes)."""
    _, idle = await max_lag_during(asyncio.sleep(5))
    started = time.perf_counter()
    rows, lag = await max_lag_during(reports.export_history(SYSTEM, HistoryFilter(zone=MOSCOW.key), path))
    seconds = time.perf_counter() - started
    return {'rows': rows, 'seconds': round(seconds, 2), 'rows_per_s': round(rows / seconds), 'max_loop_lag_ms': lag,
            'idle_max_loop_lag_ms': idle, 'file_mb': round(path.stat().st_size / 2 ** 20, 1)}


def peak_rss_mb(*who: int) -> float:
    return round(max(resource.getrusage(one).ru_maxrss for one in who) / 1024, 1)


async def sample_cells(count: int) -> list[list[object]]:
    """The first `count` messages as the report's cells, dates in Moscow time and naive (openpyxl refuses aware
    ones): what both baselines write."""
    clause, params = where(HistoryFilter())
    cells: list[list[object]] = []
    async for rows, links in report_process._chunks(clause, params):
        by_message: dict = {}
        for link in links:
            by_message.setdefault(link['message_id'], []).append((f'http://127.0.0.1:8080/s/{link["code"]}',
                                                                 link['clicks']))
        cells += [[value.astimezone(MOSCOW).replace(tzinfo=None) if isinstance(value, datetime) else value
                   for value in report_process._cells(row, by_message.get(row[0]))] for row in rows]
        if len(cells) >= count:
            return cells[:count]
    return cells


def rows_per_s(write, rows: list[list[object]]) -> float:
    started = time.perf_counter()
    write(rows)
    return round(len(rows) / (time.perf_counter() - started))


def openpyxl_write(path: Path, rows: list[list[object]]) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet('History')
    sheet.append(reports.HEADERS['en'])
    for row in rows:
        sheet.append(row)
    book.save(path)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=100_000)
    parser.add_argument('--database', type=Path, help='keep the filled database here and reuse it next time')
    parser.add_argument('--sample', type=int, default=10_000, help='rows written by the baselines')
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp())
    path = args.database or directory / 'export.sqlite3'
    fresh = not path.exists()
    os.environ.update(HERALD_DATA_DIR=str(directory), HERALD_DATABASE_URL=f'sqlite://{path}')
    reload_settings()  # the report process opens the database named by the settings
    await open_database(f'sqlite://{path}')
    await close_database()
    if fresh:
        fill(path, args.messages)
    await open_database(f'sqlite://{path}')
    try:
        result = await timed_export(directory / 'history.xlsx')
        peak = peak_rss_mb(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        sample = await sample_cells(args.sample)
    finally:
        await close_database()
    baseline = rows_per_s(lambda rows: openpyxl_write(directory / 'openpyxl.xlsx', rows), sample)
    ours = rows_per_s(lambda rows: write_xlsx(directory / 'ours.xlsx', 'History', reports.HEADERS['en'], rows), sample)
    print(json.dumps({**result, 'columns': len(reports.HEADERS['en']), 'peak_rss_mb': peak,
                      'baseline_sample_rows': len(sample),
                      'openpyxl_rows_per_s': baseline, 'xlsx_writer_rows_per_s': ours,
                      'ratio_to_openpyxl': round(result['rows_per_s'] / baseline, 1)}, indent=2))


if __name__ == '__main__':
    asyncio.run(main())
