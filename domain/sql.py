"""Raw SQL for the hot paths (enqueue, dispatch, reports), on SQLite and PostgreSQL alike.

Statements are written with `?` placeholders; values are adapted to what Tortoise itself stores, so rows written
here read back through the models unchanged."""
from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

_PLACEHOLDER = re.compile(r'\?')
CHUNK = 2000  # values per statement: well under SQLite's and asyncpg's parameter limits


class Many(list):
    """A list of values passed as ONE parameter (see `any_of` and `table_of`): a JSON array on SQLite, an array on
    PostgreSQL. Statements then need no chunking and no placeholder per value."""


def new_id() -> str:
    """A time-ordered UUID (version 7): rows written together sit together in the primary-key index, so a batch
    insert touches a few pages instead of one random page per row."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), 'big')
    value = value & _V7_CLEAR | _V7_SET
    text = f'{value:032x}'
    return f'{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}'


_V7_CLEAR = ~(0xF000 << 64 | 0xC << 60)
_V7_SET = 0x7000 << 64 | 0x8 << 60  # version 7, RFC 4122 variant


def any_of(sql_type: str = 'text') -> str:
    """`IN` over one `Many` parameter: `WHERE id {any_of('uuid')}` with `Many(ids)`."""
    return f'= ANY(?::{sql_type}[])' if is_postgres() else 'IN (SELECT value FROM json_each(?))'


def skip_locked(alias: str) -> str:
    """The clause that lets several processes claim rows of one table at once on PostgreSQL, each skipping the
    rows another holds (SQLite has one writer: nothing to add)."""
    return f' FOR UPDATE OF {alias} SKIP LOCKED' if is_postgres() else ''


def unindexed(column: str) -> str:
    """`column` for SQLite's planner to leave alone: without statistics it picks an index on an equality over a
    few distinct values (a status) over a selective one, so queries that have a better index say so this way."""
    return column if is_postgres() else f'+{column}'


class Where:
    """A WHERE clause (without the keyword) over a table aliased `alias`, built condition by condition. `steer`: an
    index other than the filters' must lead (SQLite has no statistics), so `column` keeps the planner off theirs."""

    def __init__(self, alias: str, steer: bool) -> None:
        self.alias, self.steer = alias, steer
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def column(self, name: str) -> str:
        column = f'{self.alias}.{name}'
        return unindexed(column) if self.steer else column

    def add(self, clause: str, *values: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(values)

    def clause(self) -> tuple[str, list[Any]]:
        return ' AND '.join(self.clauses) or 'TRUE', self.params


def table_of(*sql_types: str) -> str:
    """A derived table `(c0, c1, …)` from one `Many` parameter per column (all of the same length), for statements
    such as `UPDATE … FROM {table_of('uuid', 'text')} AS v WHERE messages.id = v.c0`."""
    names = ', '.join(f'c{i}' for i in range(len(sql_types)))
    if is_postgres():
        return f'(SELECT * FROM unnest({", ".join(f"?::{t}[]" for t in sql_types)}) AS t({names}))'
    columns = ', '.join(f"json_extract(value, '$[{i}]') AS c{i}" for i in range(len(sql_types)))
    return f'(SELECT {columns} FROM json_each(?))'


def table_values(*columns: Sequence[Any]) -> list[Many]:
    """The parameters of a `table_of` with these columns: one per column on PostgreSQL, one of rows on SQLite."""
    if is_postgres():
        return [Many(column) for column in columns]
    return [Many(zip(*columns))]


def connection() -> BaseDBAsyncClient:
    return Tortoise.get_connection('default')


def is_postgres() -> bool:
    return connection().capabilities.dialect == 'postgres'


def _adapt_sqlite(value: Any) -> Any:
    if isinstance(value, Many):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if isinstance(value, datetime):
        return str(value.astimezone(timezone.utc))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _json_default(value: Any) -> Any:
    adapted = _adapt_sqlite(value)
    if adapted is value:
        raise TypeError(f'{type(value).__name__} cannot be passed to SQLite')
    return adapted


def _adapt_postgres(value: Any) -> Any:
    if isinstance(value, Many):
        return [v.value if isinstance(v, Enum) else v for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


_CACHED = {adapt: lru_cache(maxsize=1024)(adapt) for adapt in (_adapt_sqlite, _adapt_postgres)}


def _prepare(sql: str) -> tuple[str, Any]:
    if is_postgres():
        counter = iter(range(1, 100_000))
        return _PLACEHOLDER.sub(lambda _: f'${next(counter)}', sql), _adapt_postgres
    return sql, _adapt_sqlite


async def execute(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run one statement; rows (for SELECT / RETURNING) as dicts."""
    sql, adapt = _prepare(sql)
    return await connection().execute_query_dict(sql, [adapt(v) for v in params])


async def execute_rows(sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
    """Run one SELECT; rows as the driver gives them (no dict per row: a quarter faster over many rows)."""
    sql, adapt = _prepare(sql)
    return (await connection().execute_query(sql, [adapt(v) for v in params]))[1]


async def execute_many(sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """One statement for many rows; values are adapted by column, only in the columns whose type needs it."""
    rows = list(rows)
    if rows:
        await connection().execute_many(*_many(sql, rows))


def _many(sql: str, rows: list[Sequence[Any]]) -> tuple[str, list[Sequence[Any]]]:
    sql, adapt = _prepare(sql)
    columns = _columns_to_adapt(rows, adapt)
    return sql, rows if not columns else [_adapt_row(row, columns, adapt) for row in rows]


class Writer:
    """Inserts that do not wait for each other: on SQLite they queue on its connection's thread and run while the
    caller builds the next rows; on PostgreSQL (one statement at a time per connection) each is awaited in turn.
    Use inside a transaction: leaving the block waits for every insert and raises the first failure."""

    def __init__(self) -> None:
        self._pending: list[asyncio.Future] = []

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        failure = next((result for result in results if isinstance(result, BaseException)), None)
        if failure is not None and exc_info[0] is None:
            raise failure

    async def insert_many(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
        if not rows:
            return
        if is_postgres():
            await insert_many(table, columns, rows)
            return
        statement, values = _many(_insert(table, columns), rows)
        sqlite = connection()._connection  # the transaction's aiosqlite connection: its queue keeps statement order
        self._pending.append(asyncio.ensure_future(sqlite.executemany(statement, values)))
        await asyncio.sleep(0)  # let it reach the queue before the caller goes back to work


def register_sqlite_adapters() -> None:
    """Make plain `sqlite3` store values as Herald stores them (for writers without a Tortoise connection): the
    adapters run inside sqlite3, without a Python loop over the rows. (Enums are str or int subclasses: sqlite3
    binds their values as they are.)"""
    for kind in (datetime, uuid.UUID, Decimal):
        sqlite3.register_adapter(kind, _CACHED[_adapt_sqlite])  # rows of a batch share their times and prices


def _columns_to_adapt(rows: list[Sequence[Any]], adapt) -> list[int]:
    """The columns whose values the driver cannot take as they are (each column holds one type, or None)."""
    columns = []
    for i in range(len(rows[0])):
        sample = next((row[i] for row in rows if row[i] is not None), None)
        if sample is not None and adapt(sample) is not sample:
            columns.append(i)
    return columns


def _adapt_row(row: Sequence[Any], columns: list[int], adapt) -> list[Any]:
    """A batch repeats its timestamps, statuses and prices: those are adapted once."""
    values = list(row)
    cached = _CACHED[adapt]
    for i in columns:
        value = values[i]
        values[i] = cached(value) if isinstance(value, (datetime, Enum, Decimal)) else adapt(value)
    return values


async def copy_rows(table: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
    """PostgreSQL's COPY of many rows into a table, inside the caller's transaction: several times faster than
    inserts for a large import."""
    if rows:
        columns_to_adapt = _columns_to_adapt(rows, _adapt_postgres)
        records = rows if not columns_to_adapt else [_adapt_row(row, columns_to_adapt, _adapt_postgres) for row in rows]
        await connection()._connection.copy_records_to_table(table, records=records, columns=list(columns))


async def insert_many(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    await execute_many(_insert(table, columns), rows)


def _insert(table: str, columns: Sequence[str]) -> str:
    names = ', '.join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def in_list(count: int) -> str:
    """`(?, ?, …)` for an IN clause of `count` values."""
    return '(' + ', '.join('?' * count) + ')'


def parse_time(value: Any) -> datetime | None:
    """A timestamp as a raw query returns it: a string on SQLite, a datetime on PostgreSQL."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def utc_text(value: Any) -> str | None:
    """A timestamp from a raw query as ISO 8601 in UTC (how pages and the API show times)."""
    moment = parse_time(value)
    return moment.astimezone(timezone.utc).isoformat() if moment else None
