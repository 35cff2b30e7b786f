"""Raw SQL for the hot paths (enqueue, dispatch, reports), on SQLite and PostgreSQL alike.

Statements are written with `?` placeholders; values are adapted to what Tortoise itself stores, so rows written
here read back through the models unchanged."""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

_PLACEHOLDER = re.compile(r'\?')
CHUNK = 500  # values per statement: well under SQLite's and asyncpg's parameter limits


def connection() -> BaseDBAsyncClient:
    return Tortoise.get_connection('default')


def is_postgres() -> bool:
    return connection().capabilities.dialect == 'postgres'


def _adapt_sqlite(value: Any) -> Any:
    if isinstance(value, datetime):
        return str(value.astimezone(timezone.utc))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _adapt_postgres(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _prepare(sql: str) -> tuple[str, Any]:
    if is_postgres():
        counter = iter(range(1, 100_000))
        return _PLACEHOLDER.sub(lambda _: f'${next(counter)}', sql), _adapt_postgres
    return sql, _adapt_sqlite


async def execute(sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run one statement; rows (for SELECT / RETURNING) as dicts."""
    sql, adapt = _prepare(sql)
    return await connection().execute_query_dict(sql, [adapt(v) for v in params])


async def execute_many(sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """One statement for many rows; values are adapted by column, only in the columns whose type needs it."""
    rows = list(rows)
    if not rows:
        return
    sql, adapt = _prepare(sql)
    columns = _columns_to_adapt(rows, adapt)
    values = rows if not columns else [_adapt_row(row, columns, adapt) for row in rows]
    await connection().execute_many(sql, values)


def _columns_to_adapt(rows: list[Sequence[Any]], adapt) -> list[int]:
    """The columns whose values the driver cannot take as they are (each column holds one type, or None)."""
    columns = []
    for i in range(len(rows[0])):
        sample = next((row[i] for row in rows if row[i] is not None), None)
        if sample is not None and adapt(sample) is not sample:
            columns.append(i)
    return columns


def _adapt_row(row: Sequence[Any], columns: list[int], adapt) -> list[Any]:
    values = list(row)
    for i in columns:
        values[i] = adapt(values[i])
    return values


async def insert_many(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    names = ', '.join(f'"{c}"' for c in columns)
    await execute_many(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)


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
