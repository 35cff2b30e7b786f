"""Notification history: the filters of the history page and its report, the page's queries, a message's details
and cancelling a message not yet sent.

Every query starts from `where(filters)`, so the page, the live updates and the Excel report select the same
messages. A search by part of the recipient goes through a trigram index (`message_search`, FTS5 on SQLite;
pg_trgm on PostgreSQL) instead of scanning the table."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import sql
from .auth import Actor, Permission
from .channels import Channel
from .delivery import StatusChange, change_status
from .errors import NotFound, ValidationError
from .statuses import PRE_SEND, MessageStatus

PAGE_SIZES = (10, 20, 50, 100)
COUNT_CAP = 10_000  # counting a month of a busy Herald costs more than a page: beyond this the page says "10,000+"
MIN_INDEXED_PART = 3  # a trigram index finds parts of three characters or more; shorter ones scan
_PHONE_LIKE = re.compile(r'[\d\s()+\-.]+')


class StatusView(str, Enum):
    """The status filter's choices beyond the 13 statuses (DESIGN.md "Cascade")."""
    CREATED_OPTIONAL = 'CREATED_OPTIONAL'  # fallback steps still waiting for an earlier channel
    OMITTED_OPTIONAL = 'OMITTED_OPTIONAL'  # steps that failed and handed over to the next channel

    @property
    def label(self) -> str:
        return 'Created, optional' if self is StatusView.CREATED_OPTIONAL else 'Omitted, optional'


StatusChoice = MessageStatus | StatusView


class Sort(str, Enum):
    CREATED = 'created_at'
    SENT = 'sent_at'
    DELIVERED = 'delivered_at'


@dataclass(frozen=True)
class HistoryFilter:
    """What the history page and its report show. Dates are whole days in `zone`; `date_to` is included."""
    search: str = ''
    channel: Channel | None = None
    status: StatusChoice | None = None
    date_from: date | None = None
    date_to: date | None = None
    bulk_id: str | None = None
    task_id: str | None = None
    zone: str = 'UTC'

    @classmethod
    def this_month(cls, zone: str = 'UTC', **values: Any) -> HistoryFilter:
        """The page's default: from the start of the current month (the manual's default for reports)."""
        today = datetime.now(zone_info(zone)).date()
        return cls(date_from=today.replace(day=1), zone=zone, **values)


def zone_info(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo('UTC')


def status_choice(value: str | None) -> StatusChoice | None:
    """A status filter from a URL or an API value; anything unknown means no filter."""
    for kind in (MessageStatus, StatusView):
        try:
            return kind(value)
        except ValueError:
            continue
    return None


def search_term(text: str) -> str:
    """What to look for in recipients: the digits of something phone-like (`+7 (900) 123` → `7900123`), else the
    text itself, lower-cased (a part of an email address or a chat id)."""
    text = text.strip()
    if _PHONE_LIKE.fullmatch(text):
        return re.sub(r'\D', '', text)
    return text.lower()


def where(filters: HistoryFilter, alias: str = 'm', sort: Sort = Sort.CREATED) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) over messages aliased `alias`, and its parameters.

    SQLite's planner has no statistics, so the clause tells it which index to start from: the search index when
    there is a search (its matches are few), the sort column's index when sorting by another time than creation
    (a page then stops after a few rows instead of sorting the whole period), else the best filter index."""
    term = search_term(filters.search)
    by_search = len(term) >= MIN_INDEXED_PART
    clause = sql.Where(alias, steer=by_search or sort is not Sort.CREATED)
    add, column = clause.add, clause.column
    zone = zone_info(filters.zone)
    if filters.date_from:
        add(f'{column("created_at")} >= ?', datetime.combine(filters.date_from, time(), zone))
    if filters.date_to:
        add(f'{column("created_at")} < ?', datetime.combine(filters.date_to + timedelta(days=1), time(), zone))
    if filters.channel:
        add(f'{column("channel")} = ?', filters.channel.value)
    if filters.status is StatusView.CREATED_OPTIONAL:
        add(f'{column("status")} = ? AND {alias}.step_index > 0', MessageStatus.CREATED.value)
    elif filters.status is StatusView.OMITTED_OPTIONAL:
        add(f'{column("handed_over")} = true')  # literally the partial index's condition, so SQLite can use it
    elif filters.status is not None:
        add(f'{column("status")} = ?', filters.status.value)
    if filters.bulk_id:
        add(f'{alias}.bulk_id = ?', filters.bulk_id)
    if filters.task_id:
        add(f'{alias}.task_id = ?', filters.task_id)
    if term:
        add(_search_clause(alias, by_search),
            _match_value(term) if by_search and not sql.is_postgres() else f'%{_escape_like(term)}%')
    return clause.clause()


def _search_clause(alias: str, indexed: bool) -> str:
    if indexed and not sql.is_postgres():
        return f'{alias}.id IN (SELECT message_id FROM message_search WHERE message_search MATCH ?)'
    like = 'ILIKE' if sql.is_postgres() else 'LIKE'  # the pg_trgm index serves ILIKE '%…%'; SQLite's LIKE ignores case
    return f"{alias}.recipient {like} ? ESCAPE '\\'"


def _match_value(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _escape_like(term: str) -> str:
    return term.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')


LIST_COLUMNS = ('id', 'recipient', 'channel', 'status', 'status_description', 'short_link_clicks', 'email_opens',
                'email_clicks', 'created_at', 'sent_at', 'delivered_at')


@dataclass(frozen=True)
class Page:
    total: int  # at most COUNT_CAP: see `exact`
    rows: list[dict[str, Any]]
    exact: bool = True  # False: more than COUNT_CAP messages match


async def list_messages(actor: Actor, filters: HistoryFilter, offset: int = 0, limit: int = 20,
                        sort: Sort = Sort.CREATED, descending: bool = True) -> Page:
    """One page of the history and the number of messages the filters select."""
    actor.require(Permission.VIEW)
    limit = min(max(1, limit), max(PAGE_SIZES))
    order = 'DESC' if descending else 'ASC'
    nulls = ' NULLS LAST' if sql.is_postgres() and descending else ''
    columns = ', '.join(f'm.{name}' for name in LIST_COLUMNS)
    clause, params = where(filters)
    counted = await sql.execute(f'SELECT count(*) AS n FROM (SELECT 1 FROM messages m WHERE {clause} LIMIT ?) AS c',
                                [*params, COUNT_CAP + 1])
    clause, params = where(filters, sort=sort)
    rows = await sql.execute(
        f'SELECT {columns} FROM messages m WHERE {clause} ORDER BY {_order(sort, order, nulls)} LIMIT ? OFFSET ?',
        [*params, limit, min(max(0, offset), COUNT_CAP)])
    total = counted[0]['n']
    return Page(min(total, COUNT_CAP), [_listed(row) for row in rows], exact=total <= COUNT_CAP)


def _order(sort: Sort, order: str, nulls: str) -> str:
    """The ORDER BY of a page: the sort column, then the order of its index's own columns, so SQLite reads the index
    in order instead of sorting a whole group of equal times (a batch of thousands shares one creation time)."""
    tie = 'm.id' if sql.is_postgres() else 'm.rowid'  # SQLite: the last column of every index
    columns = [f'm.{sort.value}'] + (['m.created_at'] if sort is not Sort.CREATED else []) + [tie]
    return ', '.join(f'{column} {order}{nulls if column == columns[0] else ""}' for column in columns)


async def messages_by_id(actor: Actor, ids: list[str]) -> list[dict[str, Any]]:
    """The listed fields of these messages (a live page refreshes the rows that changed)."""
    actor.require(Permission.VIEW)
    if not ids:
        return []
    columns = ', '.join(LIST_COLUMNS)
    rows = await sql.execute(f"SELECT {columns} FROM messages WHERE id {sql.any_of('uuid')}", [sql.Many(ids)])
    return [_listed(row) for row in rows]


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    listed = dict(row)
    listed['id'] = str(row['id'])
    for name in ('created_at', 'sent_at', 'delivered_at'):
        listed[name] = sql.utc_text(row[name])
    listed['tracks'] = f"{row['email_opens']} / {row['email_clicks']}" if row['channel'] == Channel.EMAIL.value else ''
    return listed


_DETAIL_COLUMNS = (
    'm.id', 'm.notification_id', 'm.bulk_id', 'm.task_id', 'm.step_index', 'm.channel', 'm.provider', 'm.sender',
    'm.recipient', 'm.subject', 'm.text', 'm.html', 'm.params', 'm.parts', 'm.cost', 'm.currency', 'm.status',
    'm.status_description', 'm.provider_message_id', 'm.network', 'm.attempt', 'm.required', 'm.handed_over',
    'm.in_doubt', 'm.validity_minutes', 'm.created_at', 'm.updated_at', 'm.due_at', 'm.send_started_at',
    'm.sent_at', 'm.delivered_at', 'm.expires_at', 'm.ended_at', 'm.short_link_clicks', 'm.email_opens',
    'm.email_clicks', 'n.group_id', 'n.flow_id', 'n.external_id', 'n.client_id', 'n.phone', 'n.email',
    'n.variables', 'n.callback_url', 'n.template_id', 't.name AS template_name', 'r.name AS route_name',
)


@dataclass(frozen=True)
class MessageDetails:
    fields: dict[str, Any]
    events: list[dict[str, Any]]
    steps: list[dict[str, Any]]  # every step of the same notification's cascade, this one included

    @property
    def can_cancel(self) -> bool:
        return MessageStatus(self.fields['status']) in PRE_SEND


async def message_details(actor: Actor, message_id: str) -> MessageDetails:
    """Every field of a message, its status timeline and the other steps of its cascade."""
    actor.require(Permission.VIEW)
    if not _is_uuid(message_id):
        raise NotFound(f'There is no message {message_id}.')
    rows = await sql.execute(
        f'SELECT {", ".join(_DETAIL_COLUMNS)} FROM messages m JOIN notifications n ON n.id = m.notification_id '
        'LEFT JOIN templates t ON t.id = n.template_id LEFT JOIN provider_routes r ON r.id = m.route_id '
        'WHERE m.id = ?', [message_id])
    if not rows:
        raise NotFound(f'There is no message {message_id}.')
    fields = {key: _plain(value) for key, value in rows[0].items()}
    events = await sql.execute('SELECT at, status, description, details FROM message_events WHERE message_id = ? '
                               'ORDER BY at, id', [message_id])
    steps = await sql.execute('SELECT id, step_index, channel, recipient, status, status_description, required '
                              'FROM messages WHERE notification_id = ? ORDER BY step_index',
                              [fields['notification_id']])
    return MessageDetails(fields, [{key: _plain(value) for key, value in event.items()} for event in events],
                          [{key: _plain(value) for key, value in step.items()} for step in steps])


def _plain(value: Any) -> Any:
    """A value as the page shows it: ids as text, times as UTC ISO strings."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == '-' and value[10] == ' ' and value[13] == ':':
        return datetime.fromisoformat(value).astimezone(timezone.utc).isoformat()  # a timestamp read from SQLite
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


def _is_uuid(value: str) -> bool:
    return bool(re.fullmatch(r'[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}', value or ''))


async def cancel_message(actor: Actor, message_id: str) -> None:
    """Cancel a message not yet handed to a provider, with the later steps of its cascade still waiting for it
    (they would otherwise wait forever)."""
    actor.require(Permission.SEND)
    details = await message_details(actor, message_id)
    if not details.can_cancel:
        raise ValidationError({'status': f'The message is {details.fields["status"]}: only messages not yet sent '
                                         'can be canceled.'})
    reason = f'Canceled by {actor.label}'
    waiting = [step['id'] for step in details.steps
               if step['step_index'] > details.fields['step_index'] and step['status'] == MessageStatus.CREATED.value]
    moved = await change_status([StatusChange(step_id, MessageStatus.CANCELED, reason)
                                 for step_id in [message_id, *waiting]])
    if message_id not in {str(row['id']) for row in moved}:
        raise ValidationError({'status': 'The message was sent meanwhile: it can no longer be canceled.'})
