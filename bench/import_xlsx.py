"""A task import on SQLite (or PostgreSQL): a generated N-row "SMS messages" task file, from upload to the task
created with every message in the outbox.

    .venv/bin/python bench/import_xlsx.py [--rows 100000] [--database-url postgres://…]

The file (written in another process, not timed) has the SMS kind's English headers and phones written the ways
spreadsheets hold them: as numbers, as '8 (912) …' Russian numbers, with '+', spaces and dashes. Timed:
`task_import.check_file` (read, validate every row, build and stage the messages: in the worker processes,
started beforehand and each having done a small import, as in a running Herald) and `tasks.create_task` (copy
into the outbox). Prints one JSON object: rows, seconds, check_seconds, create_seconds, rows_per_s, messages
(counted in the outbox afterwards), peak_rss_mb (this process's peak plus the larger worker's, both reset just
before the import: the import's own memory), main_peak_rss_mb, worker_peak_rss_mb, max_loop_lag_ms (the worst
overshoot of a task sleeping 10 ms in a loop during the import: how long other users' pages could wait) and, as
the baseline of the same run, raw_phonenumbers_per_s (`phonenumbers.parse` + `is_valid_number` of the same
numbers, in this process)."""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import phonenumbers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export import max_lag_during  # noqa: E402
from domain import phones, sql, task_files, task_import, tasks  # noqa: E402
from domain.auth import SYSTEM  # noqa: E402
from domain.channels import Channel  # noqa: E402
from domain.config import reload_settings  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from domain.models import SenderName, SenderStatus, Tariff, TaskKind  # noqa: E402
from domain.xlsx import write_xlsx  # noqa: E402

SENDER = 'Shop'


def phone_cells(count: int) -> list[object]:
    """Distinct Russian mobile numbers, a quarter in each way a spreadsheet may hold them."""
    cells: list[object] = []
    for i in range(count):
        number = f'912{i:07d}'
        cells.append((int(f'7{number}'), f'8 ({number[:3]}) {number[3:6]}-{number[6:8]}-{number[8:]}',
                      f'+7 {number[:3]} {number[3:6]} {number[6:8]} {number[8:]}', f'+7{number}')[i % 4])
    return cells


def write_file(path: Path, count: int) -> None:
    headers = [column.en for column in task_files.COLUMNS[TaskKind.SMS]]
    keys = [column.key for column in task_files.COLUMNS[TaskKind.SMS]]
    cells = phone_cells(count)
    values = {'sender': lambda i: SENDER, 'text': lambda i: f'Hello! Your order {i} is ready for pickup.',
              'external_id': lambda i: f'client-{i}'}
    rows = ([cells[i] if key == 'phone' else values.get(key, lambda i: '')(i) for key in keys] for i in range(count))
    write_xlsx(path, 'Messages', headers, rows)


def raw_phonenumbers_per_s(cells: list[object]) -> float:
    started = time.perf_counter()
    for cell in cells:
        number = phonenumbers.parse(str(cell), 'RU')
        phonenumbers.is_valid_number(number)
    return len(cells) / (time.perf_counter() - started)


def peak_rss_mb(worker_pids: list[int]) -> dict[str, float]:
    own = _high_water_mb(os.getpid())
    worker = max((_high_water_mb(pid) for pid in worker_pids), default=0.0)
    return {'peak_rss_mb': round(own + worker), 'main_peak_rss_mb': round(own), 'worker_peak_rss_mb': round(worker)}


def _high_water_mb(pid: int) -> float:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    return 0.0


async def warm_up(directory: Path) -> None:
    """A small import first, discarded, as a running Herald has done: every worker has loaded the import's code
    (the first import after a start pays about a second for it)."""
    small = directory / 'warm-up.xlsx'
    write_file(small, 200)
    checks = [await task_import.check_file(SYSTEM, TaskKind.SMS, small, small.name) for _ in phones.worker_pids()]
    for check in checks:
        check.discard()


async def measure(database_url: str, path: Path, count: int) -> dict[str, object]:
    await open_database(database_url)
    try:
        await SenderName.create(name=SENDER, channel=Channel.SMS, status=SenderStatus.APPROVED)
        await Tariff.create(channel=Channel.SMS, country='RU', price_per_part='0.0300', currency='EUR')
        phones.start_workers()
        await warm_up(path.parent)

        for pid in (os.getpid(), *phones.worker_pids()):  # peaks from here on: the import's, not the set-up's
            Path(f'/proc/{pid}/clear_refs').write_text('5')

        async def run() -> tuple[float, float]:
            started = time.perf_counter()
            check = await task_import.check_file(SYSTEM, TaskKind.SMS, path, path.name)
            checked = time.perf_counter()
            await tasks.create_task(SYSTEM, check, 'Bench', [], 'UTC')
            return checked - started, time.perf_counter() - checked

        (check_seconds, create_seconds), lag = await max_lag_during(run())
        messages = (await sql.execute('SELECT count(*) AS n FROM messages'))[0]['n']
        return {'check_seconds': round(check_seconds, 2), 'create_seconds': round(create_seconds, 2),
                'messages': messages, **peak_rss_mb(phones.worker_pids()), 'max_loop_lag_ms': lag}
    finally:
        phones.stop_workers()
        await close_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=100_000)
    parser.add_argument('--database-url', default='')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        os.environ['HERALD_DATA_DIR'] = directory
        reload_settings()
        path = Path(directory) / 'sms-task.xlsx'
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as writer:
            writer.submit(write_file, path, args.rows).result()  # elsewhere: this process's memory is Herald's
        database_url = args.database_url or f'sqlite://{Path(directory) / "bench.sqlite3"}'
        result = asyncio.run(measure(database_url, path, args.rows))
        seconds = result['check_seconds'] + result['create_seconds']
        print(json.dumps({'rows': args.rows, 'seconds': round(seconds, 2), **result,
                          'rows_per_s': round(args.rows / seconds),
                          'raw_phonenumbers_per_s': round(raw_phonenumbers_per_s(phone_cells(args.rows))),
                          'file_mb': round(path.stat().st_size / 2 ** 20, 1)}))


if __name__ == '__main__':
    main()
