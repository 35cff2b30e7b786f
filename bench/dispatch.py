"""Delivery engine throughput: enqueue and dispatch of N messages, to the simulator or to an SMTP server, on SQLite
in this process or on PostgreSQL by several Herald processes.

    .venv/bin/python bench/dispatch.py [--messages 100000] [--reports]
    .venv/bin/python bench/dispatch.py --provider smtp [--messages 5000] [--connections 4]
    .venv/bin/python bench/dispatch.py --database postgres [--processes 1,2,3] [--messages 50000] [--provider smtp]

Prints one JSON object. Simulator (zero latency, no delivery reports unless --reports): enqueue_msgs_per_s (the
phone-validating worker processes already started, as in a running Herald), dispatch_msgs_per_s (outbox to SENT
persisted, the dispatcher running as in `main.py serve`) and, as the baseline of the same run, raw_sqlite_rows_per_s (plain sqlite3 executemany of the same
message rows). SMTP (an aiosmtpd server in its own process, tests/smtp_recorder.py): smtp_msgs_per_s (outbox to SENT
persisted, the dispatcher running as in `main.py serve`, through an `smtp` route of `--connections` pooled
connections) and, as the baseline of the same run, raw_aiosmtplib_msgs_per_s (plain aiosmtplib `send_message` of as
many EmailMessage objects, built before the clock starts, to the same server over as many parallel connections) and
their ratio; also raw_aiosmtplib_flattened_msgs_per_s and ratio_to_flattened, the stricter baseline of `sendmail`
with the messages already serialized to bytes (pure protocol and network).

PostgreSQL (`--database postgres`, a throwaway cluster, tests/pgcluster.py): for each process count, a fresh database
holds the messages, enqueued due a day later; then that many `main.py --role worker` processes start, and once all
answer /healthz the messages are made due in one UPDATE, after which the clock runs until none is QUEUED:
dispatch_msgs_per_s, with the CPU seconds each Herald process and the PostgreSQL server spent meanwhile (from
/proc/<pid>/stat). The baseline of the same run, raw_postgres_rows_per_s: plain asyncpg COPY of as many message-like
rows, then an UPDATE of each row once in batches of 1,000 (the dispatcher's batch), the better of a run before and
one after."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import deque
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / 'tests')]

from herald_process import herald_processes  # noqa: E402
from pgcluster import PostgresCluster  # noqa: E402
from smtp_recorder import running  # noqa: E402

from domain import enqueue  # noqa: E402
from domain import phones as domain_phones  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.channels import Channel  # noqa: E402
from domain.cluster import postgres_dsn  # noqa: E402
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


async def queue_for_later(url: str, provider: str, count: int, smtp_port: int | None) -> None:
    """A migrated database with a default route to the simulator (zero latency, no reports) or to the SMTP server,
    and `count` messages queued, due a day later: no worker sends them before `make_due`."""
    await open_database(url)
    if provider == 'smtp':
        await ProviderRoute.create(name='mail', channel=Channel.EMAIL, provider='smtp', is_default=True,
                                   concurrency=4, rate_per_second=1_000_000,
                                   settings={'host': '127.0.0.1', 'port': smtp_port, 'security': 'none',
                                             'pool_size': 4})
        step, destinations = EMAIL_STEP, [Destination(email=address, variables={'code': i})
                                          for i, address in enumerate(emails(count))]
    else:
        await SenderName.create(name='Bench', channel=Channel.SMS, status=SenderStatus.APPROVED)
        await ProviderRoute.create(name='sim', channel=Channel.SMS, provider='simulator', is_default=True,
                                   concurrency=8, rate_per_second=1_000_000,
                                   settings={'report_delay_ms': 0, 'send_reports': False})
        step, destinations = STEP, [Destination(phone=phone, variables={'code': i})
                                    for i, phone in enumerate(phones(count))]
        domain_phones.start_workers()
    later = datetime.now(timezone.utc) + timedelta(days=1)
    for start in range(0, count, CHUNK):
        await enqueue.enqueue(SYSTEM, SendRequest(steps=[step], destinations=destinations[start:start + CHUNK],
                                                  send_at=later))
    domain_phones.stop_workers()
    await close_database()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def server_processes(cluster: PostgresCluster) -> list[int]:
    """The PostgreSQL server: the postmaster and its children (backends, writer, autovacuum…)."""
    postmaster = int(Path(cluster.data_dir, 'postmaster.pid').read_text().split()[0])
    children = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            if int(stat.read_text().rsplit(')', 1)[1].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return [postmaster, *children]


def cpu_of(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return seconds


async def make_due(dsn: str) -> None:
    """Every queued message is due now: the workers take them at their next claim."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("UPDATE messages SET due_at = now() WHERE status = 'QUEUED'")
    finally:
        await connection.close()


async def wait_until_sent(dsn: str) -> tuple[float, int]:
    """The seconds until no message is QUEUED, and how many are SENT (or later)."""
    connection = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        while await connection.fetchval("SELECT EXISTS (SELECT 1 FROM messages WHERE status = 'QUEUED')"):
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        sent = await connection.fetchval('SELECT count(*) FROM messages WHERE status = ANY($1::text[])',
                                         [status.value for status in SENT])
    finally:
        await connection.close()
    return seconds, sent


def dispatch_with(cluster: PostgresCluster, processes: int, count: int, provider: str, smtp_port: int | None,
                  directory: Path) -> dict:
    """`processes` Herald workers on a fresh database of queued messages, timed from their release to the last SENT."""
    name = f'herald_{processes}'
    url = cluster.create_database(name)
    asyncio.run(queue_for_later(url, provider, count, smtp_port))
    with herald_processes(url, directory / name, roles=('worker',) * processes) as heralds:
        pids = [herald.process.pid for herald in heralds]
        asyncio.run(make_due(postgres_dsn(url)))
        before_herald, before_server = cpu_of(pids), cpu_of(server_processes(cluster))
        seconds, sent = asyncio.run(wait_until_sent(postgres_dsn(url)))
        after_herald, after_server = cpu_of(pids), cpu_of(server_processes(cluster))
    cluster.drop_database(name)
    return {'processes': processes, 'sent': sent, 'dispatch_seconds': round(seconds, 2),
            'dispatch_msgs_per_s': round(sent / seconds),
            'herald_cpu_seconds': [round(after_herald[pid] - before_herald[pid], 1) for pid in pids],
            'postgres_cpu_seconds': round(sum(after - before_server.get(pid, 0.0)
                                              for pid, after in after_server.items()), 1)}


async def raw_postgres(dsn: str, count: int) -> float:
    """Plain asyncpg: COPY message-like rows into a table of raw_sqlite's shape (7 columns, a primary key), then
    UPDATE each once, 1,000 a statement (the dispatcher's batch), in autocommit as the dispatcher's hand-over is."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute('DROP TABLE IF EXISTS raw_messages')
        await connection.execute('CREATE TABLE raw_messages (id UUID PRIMARY KEY, bulk_id VARCHAR(64), '
                                 'channel VARCHAR(16), recipient VARCHAR(320), text TEXT, status VARCHAR(16), '
                                 'created_at TIMESTAMPTZ)')
        now = datetime.now(timezone.utc)
        rows = [(uuid.uuid4(), 'bulk', 'sms', phone, f'Your code is {i}', 'QUEUED', now)
                for i, phone in enumerate(phones(count))]
        started = time.perf_counter()
        await connection.copy_records_to_table('raw_messages', records=rows)
        for start in range(0, count, 1000):
            await connection.execute("UPDATE raw_messages SET status = 'SENT' WHERE id = ANY($1::uuid[])",
                                     [row[0] for row in rows[start:start + 1000]])
        return count / (time.perf_counter() - started)
    finally:
        await connection.close()


def postgres_run(process_counts: list[int], count: int, provider: str) -> dict:
    """Dispatch by 1, 2, … Herald processes on one throwaway PostgreSQL cluster, against the raw asyncpg baseline."""
    result: dict = {'database': 'postgres', 'provider': provider, 'messages': count, 'cores': os.cpu_count()}
    with ExitStack() as stack:
        cluster = stack.enter_context(PostgresCluster())
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        smtp_port = stack.enter_context(running()).port if provider == 'smtp' else None
        raw_dsn = postgres_dsn(cluster.create_database('raw'))
        raw = [asyncio.run(raw_postgres(raw_dsn, count))]
        runs = [dispatch_with(cluster, n, count, provider, smtp_port, directory) for n in process_counts]
        raw.append(asyncio.run(raw_postgres(raw_dsn, count)))
    result['raw_postgres_rows_per_s'] = round(max(raw))
    for run in runs:
        run['ratio_to_raw'] = round(run['dispatch_msgs_per_s'] / result['raw_postgres_rows_per_s'], 3)
        run['speedup'] = round(run['dispatch_msgs_per_s'] / runs[0]['dispatch_msgs_per_s'], 2)
    result['runs'] = runs
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--provider', choices=('simulator', 'smtp'), default='simulator')
    parser.add_argument('--database', choices=('sqlite', 'postgres'), default='sqlite',
                        help='postgres: several Herald processes on a throwaway PostgreSQL cluster')
    parser.add_argument('--processes', default='1,2,3', help='Herald process counts to measure (postgres only)')
    parser.add_argument('--messages', type=int, help='default 100000 (simulator), 5000 (smtp), 50000 (postgres)')
    parser.add_argument('--connections', type=int, default=4, help='SMTP connections (smtp only)')
    parser.add_argument('--reports', action='store_true',
                        help='the simulator also reports every message DELIVERED at once (simulator only)')
    args = parser.parse_args()
    if args.database == 'postgres':
        result = postgres_run([int(n) for n in args.processes.split(',')], args.messages or 50_000, args.provider)
    else:
        result = sqlite_run(args)
    print(json.dumps(result))


def sqlite_run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        if args.provider == 'smtp':
            return smtp_run(Path(directory) / 'herald.sqlite3', args.messages or 5_000, args.connections)
        count = args.messages or 100_000
        result = asyncio.run(measure(Path(directory) / 'herald.sqlite3', count, args.reports))
        result['raw_sqlite_rows_per_s'] = round(raw_sqlite(Path(directory) / 'raw.sqlite3', count))
        return result


if __name__ == '__main__':
    main()
