"""What the API's route modules share: the camelCase model base, paging, times and time ranges on the wire, and
domain error fields named as the request names them."""
from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, BinaryIO, Generic, TypeVar

from fastapi import Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from domain import task_files
from domain.config import settings
from domain.errors import ValidationError

T = TypeVar('T')
MAX_OFFSET = 2**31 - 1


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Page(ApiModel, Generic[T]):
    count: int
    items: list[T]


class Paging:
    """The `limit` and `offset` query parameters of a list."""

    def __init__(self, limit: int = Query(20, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> None:
        self.limit, self.offset = limit, offset


WireTime = Annotated[str, StringConstraints(max_length=8)]
TimeRange = tuple[WireTime, WireTime]
TimeRanges = Annotated[list[TimeRange], Field(max_length=48)]
_WIRE_TIME = re.compile(r'(\d\d:\d\d)(:00)?')


def ranges_from_wire(ranges: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """`[["09:00:00", "22:00:00"]]` → `[("09:00", "22:00")]` as Herald stores them (HH:MM also accepted; other
    values are passed on for the domain to reject)."""
    return [tuple(_hhmm(value) for value in pair) for pair in ranges]


def _hhmm(value: str) -> str:
    match = _WIRE_TIME.fullmatch(value.strip())
    return match[1] if match else value


def ranges_to_wire(ranges: Sequence[Sequence[str]]) -> list[list[str]]:
    return [[f'{start}:00', f'{end}:00'] for start, end in ranges]


_WIRE_NAMES = {'time_ranges': 'allowedTimeRanges', 'steps': 'channels', 'file': 'messages', 'template': 'templateId'}


def wire_field(key: str) -> str:
    """A domain error's field key as the wire names it: `time_ranges.1` → `allowedTimeRanges[1]`."""
    head, *rest = key.split('.')
    path = _WIRE_NAMES.get(head, to_camel(head))
    for part in rest:
        path += f'[{part}]' if part.isdigit() else f'.{to_camel(part)}'
    return path


@contextmanager
def wire_errors(rename: Callable[[str], str] = wire_field) -> Iterator[None]:
    """Re-raise a domain ValidationError with its fields named as in the request."""
    try:
        yield
    except ValidationError as error:
        raise ValidationError({rename(key): message for key, message in error.errors.items()}) from error


def utc(moment: datetime | None) -> datetime | None:
    """A time from a request in UTC (one without a zone is taken as UTC)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


async def saved_upload(upload: UploadFile) -> Path:
    """An uploaded Excel file in a file of its own under the data dir, written off the event loop."""
    path = settings().data_dir / 'uploads' / f'{uuid.uuid4().hex}.xlsx'
    await asyncio.to_thread(_save, upload.file, path)
    return path


def _save(source: BinaryIO, target: Path) -> None:
    """At most one byte more than a task file may have: the reader rejects a bigger one without reading it all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open('wb') as file:
        file.write(source.read(task_files.MAX_FILE_BYTES + 1))
