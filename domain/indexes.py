"""Index kinds the models need beyond Tortoise's own."""
from __future__ import annotations

from typing import Any

from tortoise.indexes import PartialIndex


class PresentIndex(PartialIndex):
    """An index of only the rows whose first column is set: a column that is NULL for most rows (a lease, an expiry,
    a provider's id, a task) then costs nothing to write for those rows, on SQLite and PostgreSQL alike."""

    def __init__(self, *expressions: Any, fields: tuple[str, ...] | list[str] | None = None,
                 name: str | None = None) -> None:
        super().__init__(*expressions, fields=fields, name=name)
        self.extra = f' WHERE "{self.fields[0]}" IS NOT NULL'
