"""The report process (`python -m domain.report_process`, started by domain.reports.export_history): it opens its
own connection to the database, reads the messages the history filters select in keyset-paginated chunks, turns
them into cells and streams them into the workbook (domain/xlsx.py). The job comes pickled on stdin; the progress
goes to stdout as lines `progress <rows>`, then `done <rows>` or `error <message>`.

Started as a plain program, not through multiprocessing: a spawned child would import the parent's main module
(main.py, with NiceGUI) first. Keep the imports light for the same reason (domain.auth and domain.history bring
phonenumbers' metadata, some 65 MB)."""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tortoise import Tortoise

from . import sql
from .channels import Channel
from .db import tortoise_config
from .xlsx import XlsxStream

CHUNK = 2000  # messages per query
NICENESS = 5  # on a busy machine the server's event loop gets the CPU first: pages stay responsive

_COLUMNS = (
    'm.id', 'm.bulk_id', 'n.group_id', 'n.flow_id', 'm.status', 'm.status_description', 'm.channel', 'm.sender',
    'm.recipient', 'm.text', 'm.subject', 'm.cost', 'm.currency', 'm.network', 'n.template_id',
    't.name AS template_name', 'n.variables', 'm.parts', 'm.email_opens', 'm.email_clicks', 'm.short_link_clicks',
    'm.created_at', 'm.sent_at', 'm.delivered_at', 'm.due_at', 'm.ended_at',
)
_CREATED_AT = _COLUMNS.index('m.created_at')
_TIE = len(_COLUMNS)  # after the report's columns: what orders messages created at the same time
_FROM = ('FROM messages m JOIN notifications n ON n.id = m.notification_id '
         'LEFT JOIN templates t ON t.id = n.template_id')


def main() -> None:
    os.nice(NICENESS)
    job = pickle.load(sys.stdin.buffer)
    try:
        asyncio.run(_write(job))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        _say('error', f'{type(error).__name__}: {error}'.replace('\n', ' '))
        sys.exit(1)


def _say(kind: str, value: object) -> None:
    sys.stdout.write(f'{kind} {value}\n')
    sys.stdout.flush()


async def _write(job: dict[str, Any]) -> None:
    await Tortoise.init(config=tortoise_config(job['database_url']))
    stream = XlsxStream(Path(job['path']), job['title'], job['headers'], job['zone'])
    done = 0
    try:
        async for rows, links in _read_ahead(_chunks(job['clause'], job['params'])):
            by_message: dict[Any, list[tuple[str, int]]] = defaultdict(list)
            for link in links:
                by_message[link['message_id']].append((f'{job["public_url"]}/s/{link["code"]}', link['clicks']))
            stream.write([_cells(row, by_message.get(row[0])) for row in rows])
            done += len(rows)
            _say('progress', done)
        _say('done', stream.close())
    except BaseException:
        stream.abort()
        raise
    finally:
        await Tortoise.close_connections()


async def _chunks(clause: str, params: list[Any]) -> AsyncIterator[tuple[list[Sequence[Any]], list[dict[str, Any]]]]:
    """The selected messages (rows in _COLUMNS' order, then the tie), CHUNK at a time in creation order, each chunk
    with its messages' short links. Ties are broken as the created_at index orders them (SQLite: by rowid), so no
    query sorts a batch of thousands of messages created at the same moment."""
    tie = 'm.id' if sql.is_postgres() else 'm.rowid'
    select = f'SELECT {", ".join(_COLUMNS)}, {tie} {_FROM} WHERE {clause}'
    after: list[Any] = []
    while True:
        keyset = f' AND (m.created_at, {tie}) > (?, ?)' if after else ''
        rows = await sql.execute_rows(f'{select}{keyset} ORDER BY m.created_at, {tie} LIMIT ?',
                                      [*params, *after, CHUNK])
        if not rows:
            return
        links = await sql.execute('SELECT message_id, code, clicks FROM short_links '
                                  f"WHERE message_id {sql.any_of('uuid')} ORDER BY id",
                                  [sql.Many(row[0] for row in rows)])
        yield rows, links
        if len(rows) < CHUNK:
            return
        after = [rows[-1][_CREATED_AT], rows[-1][_TIE]]


async def _read_ahead(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The chunks, each next one already being read (on the database driver's thread) while this one is written."""
    pending = asyncio.ensure_future(anext(chunks))
    while True:
        try:
            current = await pending
        except StopAsyncIteration:
            return
        pending = asyncio.ensure_future(anext(chunks))
        yield current


def _cells(row: Sequence[Any], links: list[tuple[str, int]] | None) -> list[object]:
    """One message, as `_chunks` reads it, as the report's cells (HEADERS' order)."""
    (message_id, bulk_id, group_id, flow_id, status, description, channel, sender, recipient, text, subject, cost,
     currency, network, template_id, template_name, variables, parts, opens, clicks, link_clicks, created_at,
     sent_at, delivered_at, due_at, ended_at, _tie) = row
    created, due = sql.parse_time(created_at), sql.parse_time(due_at)
    return [
        str(message_id), bulk_id, group_id, flow_id, status, description, _CHANNEL_LABELS.get(channel, channel),
        sender, recipient, text or subject, Decimal(str(cost)), currency, network,
        str(template_id) if template_id else None, template_name, _variables(variables), parts,
        f'{opens} / {clicks}' if channel == _EMAIL else None,
        '\n'.join(url for url, _ in links) if links else None,
        sum(count for _, count in links) if links else link_clicks or None,
        created, sql.parse_time(sent_at), sql.parse_time(delivered_at),
        due if due and due > created else None,  # sending was put off (a time window, or sendAt)
        sql.parse_time(ended_at),
    ]


_CHANNEL_LABELS = {channel.value: channel.label for channel in Channel}
_EMAIL = Channel.EMAIL.value


def _variables(value: Any) -> str | None:
    """The notification's variables as JSON text (PostgreSQL may hand them over decoded)."""
    if not value or value == '{}':
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


if __name__ == '__main__':
    main()
