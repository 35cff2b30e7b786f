"""Importing a task file: check every row, show what would be sent, then create the task's messages at once.

The check reads the file and validates its rows in the worker processes, and builds the very rows enqueue would
write (its `_Batch`, in the workers too) into staging files. Creating the task then copies them into the outbox
in one transaction: on SQLite by `INSERT … SELECT` from the attached staging database, which runs inside SQLite
without a Python round trip per row (rows bound one by one from this process would fight the event loop for the
GIL); on PostgreSQL by COPY. So a rejected file, or a check the operator cancels, creates nothing."""
from __future__ import annotations

import asyncio
import operator
import pickle
import shutil
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import links, phones, sql, tariffs, task_files, templates
from .auth import Actor, Permission
from .channels import Channel
from .config import settings
from .enqueue import (
    _EVENT_COLUMNS,
    _MESSAGE_COLUMNS,
    _NOTIFICATION_COLUMNS,
    CONTACT_LABELS,
    SEARCH_COLUMNS,
    SendRequest,
    _Batch,
    _Contacts,
)
from .errors import ValidationError
from .models import SenderName, SenderStatus, Suppression, SuppressionKind, Task, TaskKind, Template
from .sending import Tally
from .statuses import MessageStatus

PREVIEW_ROWS = 10
_TABLES = (('notifications', _NOTIFICATION_COLUMNS), ('messages', _MESSAGE_COLUMNS),
           ('short_links', links.LINK_COLUMNS))  # staged; the events
# of the messages' first status are made from the messages while they are copied
_M = {name: i for i, name in enumerate(_MESSAGE_COLUMNS)}
_STAMPED = {'notifications': ('created_at',), 'messages': ('created_at', 'updated_at'),
            'short_links': ('created_at', 'updated_at')}
_LINK_MESSAGE = links.LINK_COLUMNS.index('message_id')


@dataclass(frozen=True)
class PreviewRow:
    row: int
    channel: Channel
    recipient: str
    text: str
    parts: int
    cost: Decimal
    currency: str
    status: MessageStatus


@dataclass
class Staged:
    """What one worker staged: a file of rows ready to copy, and its summary."""
    path: Path
    notifications: int = 0
    first: Tally = field(default_factory=Tally)  # sent whatever happens
    fallback: Tally = field(default_factory=Tally)  # sent only if the channels before do not deliver
    skipped: int = 0  # opted-out recipients' messages
    channels: dict[str, int] = field(default_factory=dict)
    problems: list[task_files.RowProblem] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    recipients: list[tuple[int, str, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    # ↑ each staged row: (row number, its notification's id, its contacts as (field, value) pairs)

    def subtract(self, removed: Staged, rows: set[int]) -> None:
        """Take out what `removed` summarizes (the staged rows `rows`, dropped after staging)."""
        self.notifications -= removed.notifications
        self.first -= removed.first
        self.fallback -= removed.fallback
        self.skipped -= removed.skipped
        for channel, count in removed.channels.items():
            self.channels[channel] -= count
        self.preview = [row for row in self.preview if row.row not in rows]
        self.recipients = [entry for entry in self.recipients if entry[0] not in rows]


@dataclass
class FileCheck:
    """A checked file, waiting for the operator to create the task (or cancel). `token` becomes the task's id."""
    token: str
    kind: TaskKind
    filename: str
    template_id: str | None
    rows: int
    problems: list[task_files.RowProblem]
    ignored_columns: list[str]
    parts: list[Staged]
    directory: Path
    use_short_links: bool = False  # URLs in SMS and Viber texts were shortened (the task's or template's choice)

    @property
    def valid(self) -> int:
        return sum(part.notifications for part in self.parts)

    @property
    def preview(self) -> list[PreviewRow]:
        return sorted((row for part in self.parts for row in part.preview), key=lambda r: r.row)[:PREVIEW_ROWS]

    def tally(self, kind: str) -> Tally:
        """The sum of every part's 'first' or 'fallback' tally."""
        return Tally.total(getattr(part, kind) for part in self.parts)

    @property
    def channels(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for part in self.parts:
            for channel, count in part.channels.items():
                counts[channel] += count
        return dict(counts)

    @property
    def problems_file(self) -> Path:
        return self.directory / 'invalid-rows.xlsx'

    def discard(self) -> None:
        """The operator canceled: nothing of the file stays."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def copied(self) -> None:
        """The rows are in the outbox: the staging files go, the file and its invalid rows stay with the task."""
        for part in self.parts:
            part.path.unlink(missing_ok=True)


def _directory(token: str) -> Path:
    return settings().data_dir / 'tasks' / token


async def check_file(actor: Actor, kind: TaskKind, upload: Path, filename: str, template_id: str | None = None,
                     task_id: str | None = None, time_zone: str = 'UTC', use_short_links: bool = False) -> FileCheck:
    """Read and check every row of an uploaded task file (for a new task, or rows to add to task `task_id`); rows'
    start dates and times are read in `time_zone` (the task's). URLs in SMS and Viber texts are shortened when
    `use_short_links`, the template's or (rows added) the task's setting says so. Raises FileRejected when the file
    as a whole is unusable, ValidationError for a bad template choice or time zone."""
    actor.require(Permission.SEND)
    if upload.stat().st_size > task_files.MAX_FILE_BYTES:
        raise task_files.FileRejected(task_files.TOO_BIG)
    token = str(task_id) if task_id else str(uuid.uuid4())
    template = await _template(actor, kind, template_id)
    if task_id:
        use_short_links = await Task.filter(id=task_id, use_short_links=True).exists()
    use_short_links = use_short_links or bool(template and template.use_short_links)
    if time_zone not in templates.time_zones():
        raise ValidationError({'time_zone': 'Choose the time zone of the task first.'})
    rules = task_files.Rules(kind=kind, template_steps=template.steps if template else None,
                             approved_senders=await _approved_senders(), default_region=settings().default_region,
                             time_zone=time_zone)
    directory = _directory(token) / uuid.uuid4().hex if task_id else _directory(token)
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / 'source.xlsx'
    await asyncio.to_thread(shutil.copyfile, upload, source)
    try:
        read = await phones.in_worker(read_in_slices, source, directory)
        mapping = task_files.map_headers(read.headers, rules)
        request = SendRequest(destinations=[], steps=template.steps if template else [],
                              template_id=template.id if template else None, bulk_id=str(uuid.uuid4()),
                              task_id=uuid.UUID(token), hold=True, use_short_links=use_short_links)
        job = _Job(request, tariffs.detached(await tariffs.tariff_table()), await _suppressed(),
                   sql.is_postgres(), directory, links.Linker.of(settings()))
        parts = list(await asyncio.gather(*(phones.in_worker(check_and_stage, path, mapping, rules, job)
                                            for path in read.slices)))
        problems = sorted(await _drop_repeats(parts, job, task_id) + [p for part in parts for p in part.problems],
                          key=lambda p: p.row)
        if problems:
            await phones.in_worker(write_problems, problems, read, directory / 'invalid-rows.xlsx')
        await asyncio.to_thread(_remove, read.slices)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return FileCheck(token, kind, filename, str(template.id) if template else None, read.rows, problems,
                     list(mapping.ignored), parts, directory, use_short_links)


@dataclass(frozen=True)
class _Read:
    """A file read by a worker: its headers, its row count, and its rows in slices pickled to files (the rows go
    from the reading worker to the checking ones without passing through the web process)."""
    headers: list[str]
    rows: int
    slices: list[Path]


SLICES = 8  # enough to keep every worker busy to the end; each is staged in a database attached to copy it, and
# SQLite attaches at most 10 at once


def read_in_slices(source: Path, directory: Path) -> _Read:
    """In a worker process: read the uploaded file (task_files.read_table checks it first) into slices."""
    table = task_files.read_table(source)
    size = max(1, -(-len(table.rows) // SLICES))
    slices = []
    for start in range(0, len(table.rows), size):
        path = directory / f'slice-{start // size}.pickle'
        with path.open('wb') as file:
            pickle.dump(table.rows[start:start + size], file, protocol=pickle.HIGHEST_PROTOCOL)
        slices.append(path)
    return _Read(table.headers, len(table.rows), slices)


def _rows_of(path: Path) -> list[tuple[int, list[object]]]:
    with path.open('rb') as file:
        return pickle.load(file)


def write_problems(problems: list[task_files.RowProblem], read: _Read, target: Path) -> None:
    """In a worker process: the invalid rows' workbook, with each row as it was in the file."""
    numbers = {problem.row for problem in problems}
    rows = [row for path in read.slices for row in _rows_of(path) if row[0] in numbers]
    target.write_bytes(task_files.problems_workbook(problems, task_files.Table(read.headers, rows)))


async def _template(actor: Actor, kind: TaskKind, template_id: str | None) -> Template | None:
    use = task_files.TEMPLATE_USE[kind]
    if not template_id:
        if use == 'required':
            raise ValidationError({'template': f'Choose the template that {task_files.LABELS[kind]} send through.'})
        return None
    if use == 'none':
        return None
    return await templates.get_template(actor, template_id)


async def _approved_senders() -> dict[str, frozenset[str]]:
    names: dict[str, set[str]] = defaultdict(set)
    for channel, name in await SenderName.filter(status=SenderStatus.APPROVED).values_list('channel', 'name'):
        names[Channel(channel).value].add(name)
    return {channel: frozenset(values) for channel, values in names.items()}


async def _suppressed() -> set[tuple[SuppressionKind, str]]:
    """Every opted-out phone and email (the list is small next to a task file; the workers check against it)."""
    return {(SuppressionKind(kind), value) for kind, value in await Suppression.all().values_list('kind', 'value')}


async def _drop_repeats(parts: list[Staged], job: _Job, task_id: str | None) -> list[task_files.RowProblem]:
    """Rows that repeat an earlier row's phone, email or messenger id, or a recipient the task already has (rows
    added from another file), are problems: a task reaches a recipient once. They are found once every worker has
    staged its share, and taken out of the staging files."""
    problems: list[task_files.RowProblem] = []
    seen = await _task_recipients(task_id) if task_id else {}
    for i, part in enumerate(parts):
        repeated: dict[int, str] = {}
        await asyncio.sleep(0)  # other users' requests get a turn between parts
        for row, notification_id, keys in part.recipients:
            key = next((key for key in keys if key in seen), None)
            if key is None:
                seen.update(dict.fromkeys(keys, row))
                continue
            earlier = f'row {seen[key]}' if seen[key] else 'a row the task already has'
            problems.append(task_files.RowProblem(row, key[0], f'the same {CONTACT_LABELS[key[0]]} as {earlier}'))
            repeated[row] = notification_id
        if repeated:
            parts[i] = await phones.in_worker(drop_staged, part, repeated, job.postgres)
    return problems


async def _task_recipients(task_id: str) -> dict[tuple[str, str], int]:
    """The contacts of a task's recipients, as `_drop_repeats` keys them (row 0: from an earlier file)."""
    rows = await sql.execute_rows('SELECT phone, email, messenger_user_id FROM notifications WHERE task_id = ?',
                                  [task_id])
    return {(name, value): 0 for row in rows
            for name, value in zip(('phone', 'email', 'messenger_user_id'), row) if value}


@dataclass(frozen=True)
class _Job:
    request: SendRequest
    tariff_table: tariffs.TariffTable
    suppressed: set[tuple[SuppressionKind, str]]
    postgres: bool
    directory: Path
    linker: links.Linker


def check_and_stage(rows_file: Path, mapping: task_files.Mapping, rules: task_files.Rules, job: _Job) -> Staged:
    """In a worker process: check a slice of the file's rows, build the rows enqueue would write for the valid ones
    and stage them in a file of their own, a few thousand at a time (memory stays flat)."""
    rows = _rows_of(rows_file)
    staged = Staged(job.directory / f'staged-{uuid.uuid4().hex}.{"pickle" if job.postgres else "sqlite3"}')
    batch = _Batch(job.request, job.request.steps, job.request.bulk_id, job.tariff_table, job.suppressed, {},
                   job.linker)
    numbers: list[int] = []  # the row number of each destination given to the batch
    batch.position = lambda index: f'row {numbers[index]}'
    batch.reporting = False
    with _Stage(staged.path, job.postgres) as stage:
        for part in sql.chunks(rows, STAGE_ROWS):
            for result in task_files.check_rows(part, mapping, rules):
                if isinstance(result, task_files.RowProblem):
                    staged.problems.append(result)
                    continue
                numbers.append(result.row)
                _stage_row(staged, batch, len(numbers) - 1, result)
            notifications, messages, _, short_links = batch.drain()
            staged.notifications += len(notifications)
            _summarize(staged, messages)
            stage.write(notifications, messages, short_links)
    staged.problems += [task_files.RowProblem(numbers[r.index], r.field or 'phone', r.reason) for r in batch.rejected]
    return staged


STAGE_ROWS = 5000


def _stage_row(staged: Staged, batch: _Batch, index: int, row: task_files.CheckedRow) -> None:
    first_message, notifications = len(batch.messages), len(batch.notifications)
    batch.add(index, row.destination, _Contacts(*row.contacts))
    if len(batch.notifications) > notifications:
        if len(staged.preview) < PREVIEW_ROWS:
            _preview(staged, row.row, batch.messages[first_message:])
        staged.recipients.append((row.row, batch.notifications[-1][0], _contact_keys(row)))


def _contact_keys(row: task_files.CheckedRow) -> tuple[tuple[str, str], ...]:
    phone, _, email = row.contacts
    return tuple((name, value) for name, value in (('phone', phone), ('email', email),
                                                   ('messenger_user_id', row.destination.messenger_user_id)) if value)


def drop_staged(part: Staged, rows: dict[int, str], postgres: bool) -> Staged:
    """In a worker process: take the staged rows `rows` (row number → notification id) out of a staging file."""
    ids = set(rows.values())
    removed = Staged(part.path, notifications=len(ids))
    kept = part.path.with_suffix('.kept')
    with _Stage(kept, postgres) as stage:
        for notifications, messages, short_links in _staged_chunks(part.path, postgres):
            dropped = [m for m in messages if m[_M['notification_id']] in ids]
            _summarize(removed, dropped)
            dropped_ids = {m[0] for m in dropped}
            stage.write([n for n in notifications if n[0] not in ids],
                        [m for m in messages if m[_M['notification_id']] not in ids],
                        [link for link in short_links if link[_LINK_MESSAGE] not in dropped_ids])
    kept.replace(part.path)
    part.subtract(removed, set(rows))
    return part


_SUMMARY = operator.itemgetter(*(_M[name] for name in ('status', 'channel', 'parts', 'cost', 'currency', 'required')))


def _summarize(staged: Staged, messages: Iterable[tuple[Any, ...]]) -> None:
    """Count the messages by what their summary needs (status, channel, parts, price): one counter update each."""
    counts = Counter(map(_SUMMARY, messages))
    for (status, channel, parts, cost, currency, required), count in counts.items():
        channel = Channel(channel).value
        staged.channels[channel] = staged.channels.get(channel, 0) + count
        if status == MessageStatus.SKIPPED:
            staged.skipped += count
        elif status == MessageStatus.PAUSED or required:
            staged.first.add(parts, Decimal(cost), currency, count)  # a staging file gives the cost back as text
        else:
            staged.fallback.add(parts, Decimal(cost), currency, count)


def _preview(staged: Staged, row: int, messages: list[tuple[Any, ...]]) -> None:
    for message in messages[:PREVIEW_ROWS - len(staged.preview)]:
        staged.preview.append(PreviewRow(
            row, Channel(message[_M['channel']]), message[_M['recipient']],
            message[_M['text']] or message[_M['subject']], message[_M['parts']], Decimal(message[_M['cost']]),
            message[_M['currency']], MessageStatus(message[_M['status']])))


class _Stage:
    """A staging file written a slice at a time: a SQLite database (copied into the outbox by INSERT … SELECT) or,
    for PostgreSQL, a sequence of pickled slices."""

    def __init__(self, path: Path, postgres: bool) -> None:
        self.path, self.postgres = path, postgres

    def __enter__(self) -> _Stage:
        if self.postgres:
            self.file = self.path.open('wb')
            return self
        sql.register_sqlite_adapters()
        self.connection = sqlite3.connect(self.path, isolation_level=None)
        self.connection.execute('PRAGMA journal_mode=OFF')
        self.connection.execute('PRAGMA synchronous=OFF')
        self.connection.execute('BEGIN')
        for table, columns in _TABLES:
            self.connection.execute(f'CREATE TABLE {table} ({", ".join(columns)})')
        return self

    def write(self, notifications: list[tuple[Any, ...]], messages: list[tuple[Any, ...]],
              short_links: list[tuple[Any, ...]]) -> None:
        if self.postgres:
            pickle.dump((notifications, messages, short_links), self.file, protocol=pickle.HIGHEST_PROTOCOL)
            return
        for (table, columns), rows in zip(_TABLES, (notifications, messages, short_links)):
            self.connection.executemany(f'INSERT INTO {table} VALUES ({", ".join("?" * len(columns))})', rows)

    def __exit__(self, *exc_info: object) -> None:
        if self.postgres:
            self.file.close()
            return
        self.connection.execute('COMMIT')
        self.connection.close()


def _staged_chunks(path: Path, postgres: bool) -> Iterator[tuple[list, list, list]]:
    """A staging file's rows back, a slice at a time."""
    if postgres:
        with path.open('rb') as file:
            while file.peek(1):
                yield pickle.load(file)
        return
    connection = sqlite3.connect(path)
    try:
        yield tuple(connection.execute(f'SELECT * FROM {table}').fetchall() for table, _ in _TABLES)
    finally:
        connection.close()


# --- copying into the outbox -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Schedule:
    """The task's time limiter: allowed ranges (empty: any time) in a time zone."""
    allowed_time_ranges: list[list[str]]
    time_zone: str


@asynccontextmanager
async def outbox_copier(check: FileCheck, schedule: Schedule) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """A function that copies the check's staged rows into the outbox inside the caller's transaction (returning
    the messages copied). On SQLite the staging databases are attached around that transaction: a database used in
    a transaction cannot be detached before it ends."""
    now = datetime.now(timezone.utc)
    if sql.is_postgres():
        async def copy_pickled() -> int:
            return sum([await _copy_pickled(part.path, schedule, now) for part in check.parts])
        yield copy_pickled
        return
    aliases = [f'staged_{uuid.uuid4().hex[:12]}' for _ in check.parts]
    await _between_transactions([(f'ATTACH DATABASE ? AS {alias}', [str(part.path)])
                                 for part, alias in zip(check.parts, aliases)])

    async def copy_attached() -> int:
        return sum([await _copy_sqlite(alias, schedule, now) for alias in aliases])
    try:
        yield copy_attached
    finally:
        await _between_transactions([(f'DETACH DATABASE {alias}', []) for alias in aliases])


async def _between_transactions(statements: list[tuple[str, list[Any]]]) -> None:
    """Statements on Tortoise's one SQLite connection outside any transaction: they wait for the connection's lock,
    which a task holds for the whole of its transaction."""
    async with sql.connection().acquire_connection() as connection:
        for statement, parameters in statements:
            await connection.execute(statement, parameters)


async def _copy_sqlite(alias: str, schedule: Schedule, now: datetime) -> int:
    for table, columns in _TABLES:
        await sql.execute(f'INSERT INTO main.{table} ({", ".join(columns)}) '
                          f'SELECT {", ".join(_selected(table, column) for column in columns)} FROM {alias}.{table}',
                          _parameters(table, columns, schedule, now))
    await sql.execute(f'INSERT INTO main.message_events ({", ".join(_EVENT_COLUMNS)}) '
                      f"SELECT id, ?, status, status_description, '{{}}' FROM {alias}.messages", [now])
    await sql.execute(f'INSERT INTO main.message_search ({", ".join(SEARCH_COLUMNS)}) '
                      f'SELECT recipient, id FROM {alias}.messages')
    return (await sql.execute(f'SELECT count(*) AS n FROM {alias}.messages'))[0]['n']


def _selected(table: str, column: str) -> str:
    if column in _STAMPED[table]:
        return '?'
    if table == 'notifications' and column == 'allowed_time_ranges':
        return "CASE WHEN allowed_time_ranges = '[]' THEN ? ELSE allowed_time_ranges END"
    if table == 'notifications' and column == 'time_zone':
        return '?'
    return column


def _parameters(table: str, columns: tuple[str, ...], schedule: Schedule, now: datetime) -> list[Any]:
    values = {'allowed_time_ranges': schedule.allowed_time_ranges, 'time_zone': schedule.time_zone}
    return [now if column in _STAMPED[table] else values[column] for column in columns
            if column in _STAMPED[table] or (table == 'notifications' and column in values)]


async def _copy_pickled(path: Path, schedule: Schedule, now: datetime) -> int:
    copied = 0
    chunks = _staged_chunks(path, postgres=True)
    while chunk := await asyncio.to_thread(next, chunks, None):
        for (table, columns), rows in zip(_TABLES, chunk):
            stamps = [columns.index(column) for column in _STAMPED[table]]
            await sql.copy_rows(table, columns, [_restamped(table, row, stamps, schedule, now) for row in rows])
        await sql.copy_rows('message_events', _EVENT_COLUMNS, [
            (m[0], now, m[_M['status']], m[_M['status_description']], '{}') for m in chunk[1]])
        copied += len(chunk[1])
    return copied


_NOTIFICATION_RANGES = _NOTIFICATION_COLUMNS.index('allowed_time_ranges')
_NOTIFICATION_ZONE = _NOTIFICATION_COLUMNS.index('time_zone')


def _restamped(table: str, row: tuple[Any, ...], stamps: list[int], schedule: Schedule, now: datetime) -> list[Any]:
    values = list(row)
    for i in stamps:
        values[i] = now
    if table == 'notifications':
        if values[_NOTIFICATION_RANGES] == '[]':
            values[_NOTIFICATION_RANGES] = schedule.allowed_time_ranges
        values[_NOTIFICATION_ZONE] = schedule.time_zone
    return values


def clean_schedule(ranges: list[tuple[str, str]] | list[list[str]], time_zone: str) -> Schedule:
    """The time limiter as entered: ValidationError keyed 'time_ranges[.i]' / 'time_zone'."""
    errors: dict[str, str] = {}
    cleaned = templates.clean_ranges([tuple(r) for r in ranges], errors) if ranges else []
    if time_zone not in templates.time_zones():
        errors['time_zone'] = f'“{time_zone}” is not a known time zone.' if time_zone else 'Choose a time zone.'
    if errors:
        raise ValidationError(errors)
    return Schedule([list(r) for r in cleaned], time_zone)


ABANDONED_AFTER = timedelta(hours=6)


async def discard_abandoned_checks() -> int:
    """Checks never made into a task (the operator closed the page) are deleted after a while, and so are staged
    rows never added to their task; returns how many went."""
    root = settings().data_dir / 'tasks'
    cutoff = time.time() - ABANDONED_AFTER.total_seconds()
    old = await asyncio.to_thread(_older_than, root, cutoff)
    tasks = {str(task_id) for task_id in await Task.filter(id__in=[d.name for d in old if templates.parse_id(d.name)])
             .values_list('id', flat=True)}
    abandoned = [d for d in old if d.name not in tasks] + \
        [path for d in old if d.name in tasks for path in d.glob('**/staged-*')]
    await asyncio.to_thread(_remove, abandoned)
    return len(abandoned)


def _older_than(root: Path, cutoff: float) -> list[Path]:
    return [d for d in root.iterdir() if d.is_dir() and d.stat().st_mtime < cutoff] if root.exists() else []


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
