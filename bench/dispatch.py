"""Delivery engine throughput: enqueue and dispatch of N messages on SQLite to the simulator (zero latency).

    .venv/bin/python bench/dispatch.py [--messages 100000]

Prints one JSON object: enqueue_msgs_per_s, dispatch_msgs_per_s (outbox to SENT persisted) and, as the baseline of
the same run, raw_sqlite_rows_per_s (plain sqlite3 executemany of the same message rows)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain import enqueue  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.channels import Channel  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from domain.enqueue import Destination, SendRequest  # noqa: E402
from domain.models import Message, ProviderRoute, SenderName, SenderStatus  # noqa: E402
from domain.statuses import MessageStatus  # noqa: E402
from scheduler.dispatcher import Dispatcher  # noqa: E402
from scheduler.routes import RouteTable  # noqa: E402

STEP = {'channel': 'sms', 'from': 'Bench', 'text': 'Your code is {{code}}'}
CHUNK = 10_000  # destinations per enqueue call, as a task import or API batch would send them


def phones(count: int) -> list[str]:
    return [f'+7912{i:07d}' for i in range(count)]


async def measure(database: Path, count: int) -> dict[str, float]:
    await open_database(f'sqlite://{database}')
    await SenderName.create(name='Bench', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await ProviderRoute.create(name='sim', channel=Channel.SMS, provider='simulator', is_default=True,
                               concurrency=8, rate_per_second=1_000_000, settings={'report_delay_ms': 0})
    numbers = phones(count)
    started = time.perf_counter()
    for start in range(0, count, CHUNK):
        await enqueue.enqueue(SYSTEM, SendRequest(steps=[STEP], destinations=[
            Destination(phone=phone, variables={'code': i}) for i, phone in enumerate(numbers[start:start + CHUNK])]))
    enqueue_seconds = time.perf_counter() - started

    routes = RouteTable()
    await routes.load()
    dispatcher = Dispatcher(routes, batch_size=2000)
    started = time.perf_counter()
    while await dispatcher.dispatch_once():
        pass
    dispatch_seconds = time.perf_counter() - started
    sent = await Message.filter(status__in=[MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED]).count()
    await routes.close()
    await close_database()
    return {'messages': count, 'sent': sent, 'enqueue_seconds': round(enqueue_seconds, 2),
            'enqueue_msgs_per_s': round(count / enqueue_seconds), 'dispatch_seconds': round(dispatch_seconds, 2),
            'dispatch_msgs_per_s': round(sent / dispatch_seconds)}


def raw_sqlite(database: Path, count: int) -> float:
    """Plain sqlite3 executemany of message-like rows into a table of the same shape, in one transaction."""
    connection = sqlite3.connect(database)
    connection.execute('CREATE TABLE raw_messages (id CHAR(36) PRIMARY KEY, bulk_id VARCHAR(64), channel VARCHAR(16), '
                       'recipient VARCHAR(320), text TEXT, status VARCHAR(16), created_at TIMESTAMP)')
    now = str(datetime.now(timezone.utc))
    rows = [(str(uuid.uuid4()), 'bulk', 'sms', phone, f'Your code is {i}', 'QUEUED', now)
            for i, phone in enumerate(phones(count))]
    started = time.perf_counter()
    with connection:
        connection.executemany('INSERT INTO raw_messages VALUES (?, ?, ?, ?, ?, ?, ?)', rows)
    seconds = time.perf_counter() - started
    connection.close()
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--messages', type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        result = asyncio.run(measure(Path(directory) / 'herald.sqlite3', args.messages))
        result['raw_sqlite_rows_per_s'] = round(raw_sqlite(Path(directory) / 'raw.sqlite3', args.messages))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
