"""Notification history on SQLite at 1,000,000 messages: how long the page's query (count + one page) takes.
    .venv/bin/python bench/history.py [--messages 1000000] [--database PATH] [--repeat 3]
Fills a fresh database (not timed; `--database` keeps and reuses it), then runs `domain.history.list_messages`, the
history page's own query, over a mix of filter combinations (period, status, channel, phone part, the two optional
views, sorting by each sortable column, page 1 and page 100) and prints one JSON object: p50_ms, p95_ms, max_ms,
per-case medians, whether the phone search used its index (EXPLAIN QUERY PLAN), and as the baseline of the same run
raw_count_ms: a plain sqlite3 `SELECT count(*)` of this month's messages on the created_at index."""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bulk import bulk_connection  # noqa: E402
from domain import history, sql  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.channels import Channel  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from domain.history import HistoryFilter, Sort, StatusView  # noqa: E402
from domain.statuses import MessageStatus as S  # noqa: E402

DAYS = 60
CHANNELS = [(Channel.SMS, 60), (Channel.EMAIL, 25), (Channel.VIBER, 10), (Channel.WHATSAPP, 3), (Channel.TELEGRAM, 2)]
STATUSES = [(S.DELIVERED, 74), (S.READ, 3), (S.UNDELIVERED, 5), (S.ERROR, 2), (S.SENT, 3), (S.PENDING, 2),
            (S.QUEUED, 2), (S.DELAYED, 1), (S.EXPIRED, 1), (S.SKIPPED, 3), (S.CANCELED, 1), (S.CREATED, 2),
            (S.PAUSED, 1)]
PHONES = 300_000  # distinct recipients


def _weighted(pairs: list[tuple], count: int, rng: random.Random) -> list:
    values, weights = zip(*pairs)
    return rng.choices(values, weights, k=count)


def fill(path: Path, count: int) -> None:
    """`count` messages (one notification each) spread over the last DAYS days, written with plain sqlite3."""
    rng = random.Random(7)
    phones = [f'+79{rng.randrange(10**9):09d}' for _ in range(PHONES)]
    now = datetime.now(timezone.utc)
    with bulk_connection(path) as connection:
        for start in range(0, count, 50_000):
            size = min(50_000, count - start)
            channels = _weighted(CHANNELS, size, rng)
            statuses = _weighted(STATUSES, size, rng)
            notifications, messages = [], []
            for channel, status in zip(channels, statuses):
                created = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
                notification_id, message_id = str(uuid.uuid4()), sql.new_id()
                phone = rng.choice(phones)
                recipient = f'user{rng.randrange(PHONES)}@example.com' if channel is Channel.EMAIL else phone
                sent = created + timedelta(seconds=rng.uniform(1, 60)) if status not in _UNSENT else None
                delivered = (sent + timedelta(seconds=rng.uniform(1, 600))
                             if status in (S.DELIVERED, S.READ) else None)
                step = 1 if status is S.CREATED else 0
                notifications.append((notification_id, notification_id, phone, str(created)))
                messages.append((message_id, notification_id, notification_id, step, channel.value, recipient,
                                 'Your code is 1234', 1, status.value, status.description,
                                 int(status in (S.UNDELIVERED, S.ERROR)), str(created), str(created),
                                 str(sent) if sent else None, str(delivered) if delivered else None))
            connection.executemany('INSERT INTO notifications (id, bulk_id, phone, created_at, variables, '
                                   "allowed_time_ranges, time_zone, use_short_links) VALUES (?, ?, ?, ?, '{}', '[]', "
                                   "'UTC', 0)", notifications)
            connection.executemany(
                'INSERT INTO messages (id, notification_id, bulk_id, step_index, channel, recipient, text, parts, '
                'status, status_description, handed_over, created_at, updated_at, sent_at, delivered_at, provider, '
                'sender, '
                "subject, html, params, cost, currency, network, attempt, required, in_doubt, short_link_clicks, "
                "email_opens, email_clicks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', '', '', '{}', "
                "'0.05', 'EUR', '', 0, 0, 0, 0, 0, 0)", messages)
            connection.commit()


_UNSENT = {S.QUEUED, S.DELAYED, S.CREATED, S.PAUSED, S.SKIPPED, S.CANCELED}


def cases(rng: random.Random, parts: list[str]) -> list[tuple[str, HistoryFilter, int, Sort, bool]]:
    """(name, filters, page, sort, descending): what operators do on the page."""
    month = HistoryFilter.this_month()
    week_ago = date.today() - timedelta(days=7)
    day = date.today() - timedelta(days=rng.randrange(1, 20))
    every = HistoryFilter()
    listed = [
        ('default: this month, newest first', month, 1, Sort.CREATED, True),
        ('this month, page 100', month, 100, Sort.CREATED, True),
        ('all time, oldest first', every, 1, Sort.CREATED, False),
        ('status DELIVERED', HistoryFilter.this_month(status=S.DELIVERED), 1, Sort.CREATED, True),
        ('status ERROR, page 100', HistoryFilter.this_month(status=S.ERROR), 100, Sort.CREATED, True),
        ('status UNDELIVERED + channel sms', HistoryFilter.this_month(status=S.UNDELIVERED, channel=Channel.SMS), 1,
         Sort.CREATED, True),
        ('channel email, page 100', HistoryFilter.this_month(channel=Channel.EMAIL), 100, Sort.CREATED, True),
        ('channel telegram', HistoryFilter.this_month(channel=Channel.TELEGRAM), 1, Sort.CREATED, True),
        ('Created, optional', HistoryFilter.this_month(status=StatusView.CREATED_OPTIONAL), 1, Sort.CREATED, True),
        ('Omitted, optional', HistoryFilter.this_month(status=StatusView.OMITTED_OPTIONAL), 1, Sort.CREATED, True),
        ('one day', HistoryFilter(date_from=day, date_to=day), 1, Sort.CREATED, True),
        ('last 7 days, page 100', HistoryFilter(date_from=week_ago), 100, Sort.CREATED, True),
        ('sort by sent, newest first', month, 1, Sort.SENT, True),
        ('sort by delivered, oldest first', month, 1, Sort.DELIVERED, False),
        ('sort by sent, page 100', month, 100, Sort.SENT, True),
        ('status DELIVERED, sort by delivered', HistoryFilter.this_month(status=S.DELIVERED), 1, Sort.DELIVERED, True),
    ]
    for part in parts:
        listed += [
            (f'phone part {len(part)} digits', HistoryFilter.this_month(search=part), 1, Sort.CREATED, True),
            (f'phone part {len(part)} digits, all time, status DELIVERED',
             HistoryFilter(search=part, status=S.DELIVERED), 1, Sort.CREATED, True),
        ]
    listed.append(('email part', HistoryFilter.this_month(search=f'user{rng.randrange(PHONES)}@'), 1, Sort.CREATED,
                   True))
    return listed


async def measure(repeat: int) -> dict:
    rng = random.Random(11)
    sample = await sql.execute('SELECT recipient FROM messages WHERE channel = ? LIMIT 200', ['sms'])
    parts = []
    for length in (4, 5, 7, 10):
        phone = rng.choice(sample)['recipient']
        start = rng.randrange(2, len(phone) - length + 1)
        parts.append(phone[start:start + length])
    timings: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, filters, page, sort, descending in cases(rng, parts):
            started = time.perf_counter()
            await history.list_messages(SYSTEM, filters, (page - 1) * 20, 20, sort, descending)
            timings.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    every = sorted(ms for values in timings.values() for ms in values)
    plan = await sql.execute(
        'EXPLAIN QUERY PLAN SELECT count(*) FROM messages m WHERE ' + history.where(HistoryFilter(search=parts[0]))[0],
        history.where(HistoryFilter(search=parts[0]))[1])
    return {
        'queries': len(every),
        'p50_ms': round(statistics.median(every), 1),
        'p95_ms': round(every[int(len(every) * 0.95) - 1], 1),
        'max_ms': round(every[-1], 1),
        'cases_median_ms': {name: round(statistics.median(values), 1) for name, values in timings.items()},
        'phone_search_plan': [row['detail'] for row in plan],
        'phone_search_uses_index': any('message_search' in row['detail'] and 'VIRTUAL TABLE' in row['detail']
                                       for row in plan),
    }


def raw_count_ms(path: Path) -> float:
    month_start = datetime.now(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    connection = sqlite3.connect(path)
    started = time.perf_counter()
    connection.execute('SELECT count(*) FROM messages WHERE created_at >= ?', [str(month_start)]).fetchone()
    elapsed = (time.perf_counter() - started) * 1000
    connection.close()
    return round(elapsed, 1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=1_000_000)
    parser.add_argument('--database', type=Path, help='keep the filled database here and reuse it next time')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    path = args.database or Path(tempfile.mkdtemp()) / 'history.sqlite3'
    fresh = not path.exists()
    await open_database(f'sqlite://{path}')
    await close_database()
    fill_seconds = 0.0
    if fresh:
        started = time.perf_counter()
        fill(path, args.messages)
        fill_seconds = time.perf_counter() - started
    baseline = raw_count_ms(path)
    await open_database(f'sqlite://{path}')
    try:
        count = (await sql.execute('SELECT count(*) AS n FROM messages'))[0]['n']
        result = await measure(args.repeat)
    finally:
        await close_database()
    print(json.dumps({'messages': count, 'fill_seconds': round(fill_seconds, 1), 'raw_count_ms': baseline, **result},
                     indent=2, ensure_ascii=False))


if __name__ == '__main__':
    asyncio.run(main())
