"""Delivery engine throughput on SQLite: enqueue and dispatch of N messages, to the simulator or to an SMTP server.

    .venv/bin/python bench/dispatch.py [--messages 100000] [--reports]
    .venv/bin/python bench/dispatch.py --provider smtp [--messages 5000] [--connections 4]

Prints one JSON object. Simulator (zero latency, no delivery reports unless --reports): enqueue_msgs_per_s (the
phone-validating worker processes already started, as in a running Herald), dispatch_msgs_per_s (outbox to SENT
persisted, the dispatcher running as in `main.py serve`) and, as the baseline of the same run, raw_sqlite_rows_per_s (plain sqlite3 executemany of the same
message rows). SMTP (an aiosmtpd server in its own process, tests/smtp_recorder.py): smtp_msgs_per_s (outbox to SENT
persisted, the dispatcher running as in `main.py serve`, through an `smtp` route of `--connections` pooled
connections) and, as the baseline of the same run, raw_aiosmtplib_msgs_per_s (plain aiosmtplib `send_message` of as
many EmailMessage objects, built before the clock starts, to the same server over as many parallel connections) and
their ratio; also raw_aiosmtplib_flattened_msgs_per_s and ratio_to_flattened, the stricter baseline of `sendmail`
with the messages already serialized to bytes (pure protocol and network)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / 'tests')]

from smtp_recorder import running  # noqa: E402

from domain import enqueue  # noqa: E402
from domain import phones as domain_phones  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.channels import Channel  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from domain.enqueue import Destination, SendRequest  # noqa: E402
from domain.models import Message, ProviderRoute, SenderName, SenderStatus  # noqa: E402
from domain.statuses import MessageStatus  # noqa: E402
from scheduler.dispatcher import Dispatcher  # noqa: E402
from scheduler.routes import RouteTable  # noqa: E402

STEP = {'channel': 'sms', 'from': 'Bench', 'text': 'Your code is {{code}}'}
EMAIL_STEP = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{code}}',
              'text': 'Your order {{code}} has shipped.'}
CHUNK = 10_000  # destinations per enqueue call, as a task import or API batch would send them
SENT = [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED]


def phones(count: int) -> list[str]:
    return [f'+7912{i:07d}' for i in range(count)]


def emails(count: int) -> list[str]:
    return [f'user{i}@example.com' for i in range(count)]


async def enqueue_all(step: dict, destinations: list[Destination]) -> float:
    """Seconds to enqueue the destinations, CHUNK per call."""
    started = time.perf_counter()
    for start in range(0, len(destinations), CHUNK):
        await enqueue.enqueue(SYSTEM, SendRequest(steps=[step], destinations=destinations[start:start + CHUNK]))
    return time.perf_counter() - started


async def serve_all() -> tuple[int, float]:
    """Messages that left the outbox and the seconds it took, with the dispatcher running as in `main.py serve` (a
    loop per channel, several batches in flight)."""
    routes = RouteTable()
    await routes.load()
    dispatcher = Dispatcher(routes)
    started = time.perf_counter()
    dispatcher.start()
    while await Message.filter(status=MessageStatus.QUEUED).exists():
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - started
    await dispatcher.stop()
    await routes.close()
    return await Message.filter(status__in=SENT).count(), seconds


async def measure(database: Path, count: int, reports: bool) -> dict[str, float]:
    await open_database(f'sqlite://{database}')
    await SenderName.create(name='Bench', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await ProviderRoute.create(name='sim', channel=Channel.SMS, provider='simulator', is_default=True,
                               concurrency=8, rate_per_second=1_000_000,
                               settings={'report_delay_ms': 0, 'send_reports': reports})
    domain_phones.start_workers()  # a running Herald keeps them from its first large request on
    enqueue_seconds = await enqueue_all(STEP, [Destination(phone=phone, variables={'code': i})
                                               for i, phone in enumerate(phones(count))])
    domain_phones.stop_workers()
    sent, dispatch_seconds = await serve_all()
    await close_database()
    return {'messages': count, 'sent': sent, 'delivery_reports': reports, 'enqueue_seconds': round(enqueue_seconds, 2),
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


async def measure_smtp(database: Path, port: int, count: int, connections: int) -> dict[str, float]:
    """Herald: N emails enqueued, then dispatched through an `smtp` route until SENT is persisted for all."""
    await open_database(f'sqlite://{database}')
    await ProviderRoute.create(name='mail', channel=Channel.EMAIL, provider='smtp', is_default=True,
                               concurrency=connections, rate_per_second=1_000_000,
                               settings={'host': '127.0.0.1', 'port': port, 'security': 'none',
                                         'pool_size': connections})
    await enqueue_all(EMAIL_STEP, [Destination(email=address, variables={'code': i})
                                   for i, address in enumerate(emails(count))])
    sent, seconds = await serve_all()
    await close_database()
    return {'messages': count, 'sent': sent, 'connections': connections, 'smtp_seconds': round(seconds, 2),
            'smtp_msgs_per_s': round(sent / seconds)}


def standard_email(i: int, address: str) -> EmailMessage:
    message = EmailMessage()
    message['From'] = 'shop@example.com'
    message['To'] = address
    message['Subject'] = f'Order {i}'
    message['Date'] = format_datetime(datetime.now(timezone.utc))
    message['Message-ID'] = f'<{uuid.uuid4()}@raw>'
    message.set_content(f'Your order {i} has shipped.')
    return message


async def raw_aiosmtplib(port: int, messages: list[EmailMessage], connections: int, flattened: bool) -> float:
    """Plain aiosmtplib: `connections` sessions, each sending the next message until none is left, with
    `send_message`, or when `flattened` with `sendmail` of the message's bytes serialized before the clock starts."""
    pending = deque((m['From'], [m['To']], m.as_bytes()) if flattened else m for m in messages)

    async def session() -> None:
        async with aiosmtplib.SMTP(hostname='127.0.0.1', port=port, start_tls=False) as smtp:
            while pending:
                item = pending.popleft()
                await (smtp.sendmail(*item) if flattened else smtp.send_message(item))

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(connections)))
    return len(messages) / (time.perf_counter() - started)


def smtp_run(database: Path, count: int, connections: int) -> dict[str, float]:
    """Herald and the plain aiosmtplib baselines against one server; each baseline runs before and after Herald
    and the better run counts."""
    messages = [standard_email(i, address) for i, address in enumerate(emails(count))]
    raw: dict[bool, list[float]] = {False: [], True: []}
    with running() as server:
        def baselines() -> None:
            for flattened, runs in raw.items():
                runs.append(asyncio.run(raw_aiosmtplib(server.port, messages, connections, flattened)))
        baselines()
        result = asyncio.run(measure_smtp(database, server.port, count, connections))
        baselines()
    result['raw_aiosmtplib_msgs_per_s'] = round(max(raw[False]))
    result['ratio'] = round(result['smtp_msgs_per_s'] / result['raw_aiosmtplib_msgs_per_s'], 2)
    result['raw_aiosmtplib_flattened_msgs_per_s'] = round(max(raw[True]))
    result['ratio_to_flattened'] = round(result['smtp_msgs_per_s'] / result['raw_aiosmtplib_flattened_msgs_per_s'], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--provider', choices=('simulator', 'smtp'), default='simulator')
    parser.add_argument('--messages', type=int, help='default 100000 (simulator), 5000 (smtp)')
    parser.add_argument('--connections', type=int, default=4, help='SMTP connections (smtp only)')
    parser.add_argument('--reports', action='store_true',
                        help='the simulator also reports every message DELIVERED at once (simulator only)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if args.provider == 'smtp':
            result = smtp_run(Path(directory) / 'herald.sqlite3', args.messages or 5_000, args.connections)
        else:
            count = args.messages or 100_000
            result = asyncio.run(measure(Path(directory) / 'herald.sqlite3', count, args.reports))
            result['raw_sqlite_rows_per_s'] = round(raw_sqlite(Path(directory) / 'raw.sqlite3', count))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
