"""Filling a benchmark's SQLite database fast: plain sqlite3 on the migrated schema, with the recipient search index
filled once at the end (as the migration does), since rows written here bypass enqueue, which keeps it."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bulk_connection(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path)
    connection.execute('PRAGMA journal_mode=WAL')
    connection.execute('PRAGMA synchronous=OFF')
    try:
        yield connection
        connection.commit()
        connection.execute('INSERT INTO message_search (recipient, message_id) SELECT recipient, id FROM messages')
    finally:
        connection.commit()
        connection.execute('PRAGMA optimize')
        connection.close()
