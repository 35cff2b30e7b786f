"""Several Herald processes on one database: which process runs the cluster-wide jobs, and the guard that keeps a
SQLite database to one process.

On PostgreSQL each singleton job (a sweep) is held by one process through a session-level advisory lock, taken on a
connection of its own. PostgreSQL releases the lock when that connection ends, so when the holder dies (or loses its
connection) another process takes the job at its next run. On SQLite the one Herald process runs every job."""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import asyncpg
from tortoise.transactions import in_transaction

from . import sql
from .config import Settings, replace_settings
from .errors import HeraldError
from .models import AppSetting

log = logging.getLogger(__name__)
LOCK_NAMESPACE = 'herald:'
POOL_OPTIONS = frozenset({'minsize', 'maxsize', 'max_queries', 'max_inactive_connection_lifetime', 'schema',
                          'connection_class'})  # in a Tortoise URL, not in asyncpg's DSN
SHARED_SECRETS = {'secret': 'HERALD_SECRET', 'callback_secret': 'HERALD_CALLBACK_SECRET'}  # setting: variable
APPLICATION_NAME = 'herald-dispatcher'  # of the connection each dispatching process keeps (`Singletons`)


class DatabaseInUse(HeraldError):
    """Another Herald process serves this SQLite database."""


def postgres_dsn(database_url: str) -> str | None:
    """The asyncpg DSN of a PostgreSQL database URL (Tortoise's `postgres://` or `asyncpg://`), else None. Options
    only Tortoise's pool knows (`?maxsize=20`) are left out: PostgreSQL would refuse them as settings."""
    scheme, _, rest = database_url.partition('://')
    if scheme not in ('postgres', 'postgresql', 'asyncpg', 'psycopg'):
        return None
    address, _, query = rest.partition('?')
    options = [(key, value) for key, value in parse_qsl(query, keep_blank_values=True) if key not in POOL_OPTIONS]
    return f'postgresql://{address}' + (f'?{urlencode(options)}' if options else '')


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a job name (the same in every process and release)."""
    digest = hashlib.blake2b((LOCK_NAMESPACE + name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big', signed=True)


async def share_secrets(settings: Settings) -> Settings:
    """On PostgreSQL every process must sign sessions, API tokens, tracked links and callbacks with the same keys.
    Those not set in the environment are kept in the database: the first process stores its own (so a single
    process moved to several keeps its keys), every later one takes them. Call with the database open, before
    anything signs. (A page session stays with the process that served it, so NiceGUI's storage secret is each
    process's own.)"""
    async with in_transaction():
        await one_at_a_time('secrets')
        record, _ = await AppSetting.get_or_create(key='secrets', defaults={'value': {}})
        missing = {name: getattr(settings, name) for name in SHARED_SECRETS if name not in record.value}
        if missing:
            record.value = {**record.value, **missing}
            await record.save()
    shared = {name: record.value[name] for name, variable in SHARED_SECRETS.items() if not os.environ.get(variable)}
    return replace_settings(**shared)


async def one_at_a_time(name: str) -> None:
    """Inside a transaction: wait until no other process runs a transaction that asked for `name`, and hold it off
    until this one ends (start-up seeding that several processes would otherwise do at once). SQLite has one
    writer already."""
    if sql.is_postgres():
        await sql.execute('SELECT pg_advisory_xact_lock(?)', [lock_key(name)])


@asynccontextmanager
async def exclusive(database_url: str, name: str) -> AsyncIterator[None]:
    """Run the block in one process at a time, before any ORM connection exists (schema migrations)."""
    dsn = postgres_dsn(database_url)
    if dsn is None:
        yield
        return
    connection = await asyncpg.connect(dsn, server_settings={'application_name': f'herald-{name}'})
    try:
        await connection.execute('SELECT pg_advisory_lock($1)', lock_key(name))
        yield
    finally:
        await connection.close()  # ends the session, and its lock with it


class Singletons:
    """Which singleton jobs this process holds. A job it does not hold is skipped; one nobody holds is taken by
    the first process that asks."""

    def __init__(self, database_url: str) -> None:
        self.dsn = postgres_dsn(database_url)
        self.held: set[str] = set()
        self._connection: asyncpg.Connection | None = None
        self._using = asyncio.Lock()  # the sweeps ask at the same time; a connection runs one query at a time

    async def holds(self, job: str) -> bool:
        """True when this process runs `job` now (taking it if it is free)."""
        if self.dsn is None:
            self.held.add(job)
            return True
        async with self._session() as connection:
            if job in self.held:
                await connection.fetchval('SELECT 1')  # the lock lives as long as this connection
                return True
            if await connection.fetchval('SELECT pg_try_advisory_lock($1)', lock_key(job)):
                self.held.add(job)
                log.info('This process now runs the cluster-wide job %s', job)
                return True
        return False

    async def dispatchers(self) -> int:
        """How many processes dispatch on this database now: each holds a connection like this one (a dead one's
        ends with it)."""
        if self.dsn is None:
            return 1
        async with self._session() as connection:
            return await connection.fetchval(
                'SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
                APPLICATION_NAME)
        return 1

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, for one caller at a time (the sweeps ask at once). When it fails, every job is given up
        and the block's work is skipped; the next call connects again."""
        async with self._using:
            try:
                if self._connection is None or self._connection.is_closed():
                    self.held.clear()
                    self._connection = await asyncpg.connect(
                        self.dsn, server_settings={'application_name': APPLICATION_NAME})
                yield self._connection
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning('Lost the connection that holds the cluster-wide jobs: %s', error)
                await self.close()

    async def close(self) -> None:
        """Give every job up (another process takes them at their next run)."""
        connection, self._connection = self._connection, None
        self.held.clear()
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()


_held_file: tuple[Path, int] | None = None  # the lock file of the SQLite database this process serves


def claim_sqlite_database(database_url: str) -> None:
    """Refuse to serve a SQLite database that another Herald process serves: SQLite has one writer, and two
    dispatchers on one file would hand messages over twice. The lock is kept until the process ends (the OS drops
    it however the process ends) or serves another database (as tests do, one after another)."""
    global _held_file  # noqa: PLW0603
    if not database_url.startswith('sqlite'):
        return
    path = Path(database_url.split('://', 1)[1]).resolve()
    lock_path = path.with_name(path.name + '.lock')
    if _held_file is not None:
        if _held_file[0] == lock_path:
            return
        os.close(_held_file[1])
        _held_file = None
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise DatabaseInUse(
            f'Another Herald process is already serving the SQLite database {path}. SQLite allows one Herald '
            'process; stop the other one, give this one its own HERALD_DATA_DIR, or run several processes on '
            'PostgreSQL (HERALD_DATABASE_URL=postgres://…; see README, "Running several processes").') from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f'{os.getpid()}\n'.encode())
    _held_file = lock_path, descriptor
