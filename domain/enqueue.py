"""The outbox: every entry point (pages, API, task imports) turns its request into notifications and messages here,
in one transaction, before anything is sent."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from tortoise.transactions import in_transaction

from . import events, links, phones, sms, sql, tariffs, templates
from .auth import Actor, Permission
from .channels import Channel
from .config import settings
from .errors import NotFound, ValidationError
from .models import ProviderRoute, Suppression, SuppressionKind, Template, TimeZoneMode
from .statuses import MessageStatus

_MESSAGE_COLUMNS = (
    'id', 'notification_id', 'task_id', 'bulk_id', 'step_index', 'channel', 'provider', 'sender', 'recipient',
    'subject', 'text', 'html', 'params', 'parts', 'cost', 'currency', 'status', 'status_description', 'network',
    'attempt', 'required', 'handed_over', 'in_doubt', 'validity_minutes', 'created_at', 'updated_at', 'due_at',
    'short_link_clicks', 'email_opens', 'email_clicks', 'pinned_route_id',
)
_NOTIFICATION_COLUMNS = (
    'id', 'bulk_id', 'group_id', 'flow_id', 'task_id', 'template_id', 'external_id', 'client_id', 'messenger_user_id',
    'phone', 'email', 'variables', 'callback_url', 'callback_data', 'use_short_links', 'send_at',
    'allowed_time_ranges', 'time_zone', 'created_at',
)
ROWS_PER_WRITE = 1000  # destinations built while the previous ones are written
_EVENT_COLUMNS = ('message_id', 'at', 'status', 'description', 'details')
SEARCH_COLUMNS = ('recipient', 'message_id')  # SQLite's `message_search` (migration 0004)
_RECIPIENT = _MESSAGE_COLUMNS.index('recipient')
_EXTRA_FIELDS = frozenset({'imageUrl', 'buttonText', 'buttonUrl', 'templateName', 'templateNamespace', 'language',
                           'mediaUrl', 'fromName', 'replyTo', 'templateData'})


@dataclass
class Destination:
    """One recipient. The fields after `variables` override the request's for this recipient; `steps` must already
    be validated (a task file's rows are checked one by one, as a template's steps are)."""
    phone: str | int | float | None = None
    email: str | None = None
    external_id: str | None = None
    client_id: str | None = None
    messenger_user_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] | None = None
    send_at: datetime | None = None
    allowed_time_ranges: list[list[str]] | None = None
    callback_url: str | None = None
    callback_data: str | None = None
    group_id: str | None = None
    flow_id: str | None = None


@dataclass
class SendRequest:
    """What to send to whom. `steps` are channel steps as stored in `Template.steps` (cascade order)."""
    destinations: list[Destination]
    steps: list[dict[str, Any]] = field(default_factory=list)
    template_id: uuid.UUID | str | None = None
    allowed_time_ranges: list[list[str]] | None = None
    time_zone_mode: TimeZoneMode = TimeZoneMode.FIXED
    time_zone: str = 'UTC'
    bulk_id: str | None = None
    group_id: str | None = None
    flow_id: str | None = None
    task_id: uuid.UUID | None = None
    callback_url: str | None = None
    callback_data: str | None = None
    use_short_links: bool = False
    send_at: datetime | None = None
    hold: bool = False  # the messages wait PAUSED (a task not yet started) instead of QUEUED
    route_id: int | None = None  # sent through this provider route only, with no failover (a test message)


@dataclass(frozen=True)
class CreatedMessage:
    id: str
    destination_index: int
    bulk_id: str
    group_id: str | None
    flow_id: str | None
    status: MessageStatus
    channel: Channel


@dataclass(frozen=True)
class RejectedDestination:
    index: int
    reason: str
    field: str = ''  # the Destination field at fault, when one is


# The Destination field each channel's messages go to (every other channel: the phone) and how to name it.
CONTACT_FIELDS = {Channel.EMAIL: 'email', Channel.TELEGRAM: 'messenger_user_id'}
CONTACT_LABELS = {'phone': 'phone', 'email': 'email', 'messenger_user_id': 'Telegram chat ID'}


def contact_field(channel: Channel) -> str:
    return CONTACT_FIELDS.get(channel, 'phone')


@dataclass
class EnqueueResult:
    bulk_id: str
    messages: list[CreatedMessage] = field(default_factory=list)
    rejected: list[RejectedDestination] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def enqueue(actor: Actor, request: SendRequest,
                  contacts: list[phones.Contacts | str] | None = None) -> EnqueueResult:
    """Write the notifications and messages of a request; destinations that cannot be sent to are rejected with a
    reason and the rest go ahead. Repeating a request with the same bulk id creates nothing twice. `contacts` are
    the destinations' contacts when the caller has already normalized them (`phones.normalize_contacts`)."""
    actor.require(Permission.SEND)
    request = await _resolve_template(request)
    steps = await _with_route_ids(await templates.clean_steps(request.steps))
    bulk_id = request.bulk_id or str(uuid.uuid4())
    if contacts is None:
        contacts = await phones.normalize_contacts_in_parallel(
            [(d.phone, d.email) for d in request.destinations], settings().default_region)
    checked = _contacts_of(contacts)
    batch = _Batch(request, steps, bulk_id, await tariffs.tariff_table(), await _suppressed(checked),
                   await _existing(bulk_id) if request.bulk_id else {})
    async with in_transaction(), sql.Writer() as writer:
        for part in sql.chunks(range(len(checked)), ROWS_PER_WRITE):
            for index in part:
                batch.add(index, request.destinations[index], checked[index])
            for table, columns, rows in table_rows(*batch.drain()):
                await writer.insert_many(table, columns, rows)
    events.publish(batch.new)
    return EnqueueResult(bulk_id, batch.created, batch.rejected)


def table_rows(notifications: list[tuple[Any, ...]], messages: list[tuple[Any, ...]], timeline: list[tuple[Any, ...]],
               short_links: list[tuple[Any, ...]]) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """(table, columns, rows) to insert, in order: SQLite's search index of recipients is kept here, not by a
    trigger (a trigger costs five times as much per row)."""
    tables = [('notifications', _NOTIFICATION_COLUMNS, notifications), ('messages', _MESSAGE_COLUMNS, messages),
              ('short_links', links.LINK_COLUMNS, short_links), ('message_events', _EVENT_COLUMNS, timeline)]
    if not sql.is_postgres():
        tables.append(('message_search', SEARCH_COLUMNS, [(row[_RECIPIENT], row[0]) for row in messages]))
    return tables


async def _with_route_ids(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps that name their provider route (`provider`, checked by clean_steps) get its id: they go through it."""
    names = {step['provider'] for step in steps if step.get('provider')}
    if not names:
        return steps
    ids = dict(await ProviderRoute.filter(name__in=names).values_list('name', 'id'))
    return [{**step, 'routeId': ids[step['provider']]} if step.get('provider') else step for step in steps]


async def _resolve_template(request: SendRequest) -> SendRequest:
    if request.template_id is None:
        if not request.steps:
            raise ValidationError({'channels': 'Choose a template or give the channels to send through.'})
        return request
    template = await Template.get_or_none(id=request.template_id) if _is_uuid(request.template_id) else None
    if template is None:
        raise NotFound(f'There is no template {request.template_id}.')
    request.steps = request.steps or template.steps
    if request.allowed_time_ranges is None:
        request.allowed_time_ranges = template.allowed_time_ranges
        request.time_zone_mode, request.time_zone = template.time_zone_mode, template.time_zone
    request.use_short_links = request.use_short_links or template.use_short_links
    return request


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


class _Contacts(NamedTuple):
    phone: str | None
    country: str
    email: str | None


async def _all_contacts(destinations: list[Destination], region: str) -> list[_Contacts | str]:
    """Each destination's normalized phone (with its country, for pricing) and email, or why it is unusable."""
    return _contacts_of(await phones.normalize_contacts_in_parallel([(d.phone, d.email) for d in destinations],
                                                                   region))


def _contacts_of(results: list[phones.Contacts | str]) -> list[_Contacts | str]:
    return [result if isinstance(result, str) else _Contacts(*result) for result in results]


async def _suppressed(contacts: list[_Contacts | str]) -> set[tuple[SuppressionKind, str]]:
    """Which of this request's phones and emails opted out."""
    values = list({value for c in contacts if isinstance(c, _Contacts) for value in (c.phone, c.email) if value})
    found: set[tuple[SuppressionKind, str]] = set()
    for chunk in sql.chunks(values):
        found |= {(SuppressionKind(kind), value)
                  for kind, value in await Suppression.filter(value__in=chunk).values_list('kind', 'value')}
    return found


async def _existing(bulk_id: str) -> dict[tuple[str, str], tuple[str, MessageStatus]]:
    """Messages an earlier try of the same request created: (recipient, channel) → (id, status)."""
    rows = await sql.execute('SELECT id, recipient, channel, status FROM messages WHERE bulk_id = ?', [bulk_id])
    return {(row['recipient'], row['channel']): (str(row['id']), MessageStatus(row['status'])) for row in rows}


class _Step(NamedTuple):
    """What every message of one step shares, worked out once per request rather than per destination (a named
    tuple: task files build one per row)."""
    index: int
    channel: Channel
    sender: str
    subject: str
    text: str
    html: str
    params: str  # JSON
    required: bool
    validity: int | None
    route_id: int | None  # the provider route it must go through, if any

    @classmethod
    def of(cls, index: int, step: dict[str, Any]) -> _Step:
        params = {key: value for key, value in step.items() if value and key in _EXTRA_FIELDS}
        return cls(index, Channel(step['channel']), step.get('from') or step.get('fromEmail', ''),
                   step.get('subject', ''), step.get('text', ''), step.get('html', ''),
                   json.dumps(params, ensure_ascii=False) if params else '{}', bool(step.get('required')),
                   step.get('validityPeriod'), step.get('routeId'))


@dataclass(frozen=True)
class _Plan:
    """The steps of a cascade and the variables their texts use."""
    steps: list[_Step]
    variables: list[str]

    @classmethod
    def of(cls, steps: list[dict[str, Any]]) -> _Plan:
        planned = [_Step.of(i, step) for i, step in enumerate(steps)]
        texts = [text for step in planned for text in (step.text, step.subject, step.html, step.params) if '{{' in text]
        return cls(planned, list(dict.fromkeys(name for text in texts for name in templates.variables_in(text))))


def _rendered(params: str, values: dict[str, Any]) -> str:
    """A step's extras (JSON) with their variables filled in (WhatsApp's template parameters may have some)."""
    if '{{' not in params:
        return params
    return json.dumps({key: templates.render(value, values) if isinstance(value, str) else value
                       for key, value in json.loads(params).items()}, ensure_ascii=False)


_WAITED_FOR = frozenset({MessageStatus.QUEUED, MessageStatus.CREATED, MessageStatus.PAUSED})
_DUE = frozenset({MessageStatus.QUEUED, MessageStatus.PAUSED})  # statuses whose messages carry when to send them


class _Batch:
    """Rows to insert for one request, built without a database round trip per destination."""

    def __init__(self, request: SendRequest, steps: list[dict[str, Any]], bulk_id: str,
                 tariff_table: tariffs.TariffTable, suppressed: set[tuple[SuppressionKind, str]],
                 existing: dict[tuple[str, str], tuple[str, MessageStatus]],
                 linker: links.Linker | None = None) -> None:
        self.request, self.bulk_id = request, bulk_id
        self.linker = linker or links.Linker.of(settings())
        self.plan = _Plan.of(steps)
        self.tariffs, self.suppressed, self.existing = tariff_table, suppressed, existing
        self.prices: dict[tuple[Channel, str, int], tuple[Any, str]] = {}
        self.now = _now()
        self.ranges = json.dumps(request.allowed_time_ranges or [])
        self.template_id = _uuid_or_none(request.template_id)
        self.task_id = str(request.task_id) if request.task_id else None
        self.notifications: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.short_links: list[tuple[Any, ...]] = []
        self.created: list[CreatedMessage] = []
        self.new: list[events.MessageChanged] = []  # published once committed, for live pages
        self.seen: dict[tuple[str, Channel], int] = {}  # (recipient, channel) → the destination that has it
        self.rejected: list[RejectedDestination] = []
        self.position: Callable[[int], str] = lambda index: f'recipient {index + 1}'  # how reasons name a destination
        self.reporting = True  # False: only the rows are wanted (no `created` list, no events to publish)

    @property
    def steps(self) -> list[_Step]:
        return self.plan.steps

    def drain(self) -> tuple[list[tuple[Any, ...]], ...]:
        """The notification, message, event and short-link rows built since the last drain (`table_rows` order)."""
        rows = self.notifications, self.messages, self.events, self.short_links
        self.notifications, self.messages, self.events, self.short_links = [], [], [], []
        return rows

    def add(self, index: int, destination: Destination, contacts: _Contacts | str) -> None:
        if isinstance(contacts, str):
            self.rejected.append(RejectedDestination(index, contacts))
            return
        phone, email = contacts.phone, contacts.email
        values = destination.variables
        plan = self.plan if destination.steps is None else _Plan.of(destination.steps)
        missing = [name for name in plan.variables if values.get(name) in (None, '')]
        if missing:
            self.rejected.append(RejectedDestination(index, f'missing variable(s): {", ".join(missing)}', 'variables'))
            return
        contacts_by_field = {'phone': phone, 'email': email, 'messenger_user_id': destination.messenger_user_id}
        planned = [(step, contacts_by_field[contact_field(step.channel)]) for step in plan.steps]
        planned = [(step, recipient) for step, recipient in planned if recipient]
        if not planned:
            self.rejected.append(RejectedDestination(index, 'no phone, email or messenger id for any of the channels'))
            return
        keys = [(str(recipient), step.channel) for step, recipient in planned]
        repeated = next((key for key in keys if key in self.seen), None)
        if repeated is not None:
            field = contact_field(repeated[1])
            self.rejected.append(RejectedDestination(
                index, f'the same {CONTACT_LABELS[field]} as {self.position(self.seen[repeated])}', field))
            return
        self.seen.update(dict.fromkeys(keys, index))
        notification_id = sql.new_id()
        send_at = destination.send_at or self.request.send_at
        due = max(send_at, self.now) if send_at else self.now
        new, waiting = False, False  # waiting: an earlier step goes out first, so later ones wait for it
        for step, recipient in planned:
            status = self._message(index, notification_id, waiting, step, str(recipient), values, contacts.country,
                                   due, destination.group_id or self.request.group_id)
            new |= status is not None
            waiting |= status in _WAITED_FOR
        if new:
            self.notifications.append(self._notification(notification_id, destination, phone, email))

    def _message(self, index: int, notification_id: str, waiting: bool, step: _Step, recipient: str,
                 values: dict[str, Any], country: str, due: datetime, group_id: str | None) -> MessageStatus | None:
        """Build the message of one step; its status, or None when an earlier request with this bulk id made it."""
        channel = step.channel
        if (recipient, channel.value) in self.existing:
            message_id, status = self.existing[(recipient, channel.value)]
            self._report(index, message_id, status, channel, group_id)
            return None
        message_id = sql.new_id()
        text = templates.render(step.text, values)
        if self.request.use_short_links and channel in links.SHORTENED and '://' in text:
            text, short_links = self.linker.shorten(text, message_id, self.task_id, self.now)
            self.short_links += short_links
        page = templates.render(step.html, values)
        if page and channel is Channel.EMAIL and self.linker.email_tracking:
            page = self.linker.track(page, message_id)
        parts = sms.part_count(text) if channel is Channel.SMS else 1
        cost, currency = self._price(channel, country if channel.uses_phone else '', parts)
        status, description = self._initial_status(waiting, channel, recipient)
        self.messages.append((
            message_id, notification_id, self.task_id, self.bulk_id, step.index, channel, '', step.sender, recipient,
            templates.render(step.subject, values), text, page, _rendered(step.params, values), parts,
            cost, currency, status, description, '', 0, step.required, False, False, step.validity,
            self.now, self.now, due if status in _DUE else None, 0, 0, 0, step.route_id or self.request.route_id,
        ))
        self.events.append((message_id, self.now, status, description, '{}'))
        if self.reporting:
            self.new.append(events.MessageChanged(message_id, notification_id, channel, status, self.now))
            self._report(index, message_id, status, channel, group_id)
        return status

    def _price(self, channel: Channel, country: str, parts: int) -> tuple[Any, str]:
        """The cost of `parts` parts and its currency (worked out once per channel, country and part count)."""
        key = (channel, country, parts)
        if key not in self.prices:
            tariff = tariffs.choose(self.tariffs, channel, country)
            self.prices[key] = tariffs.cost(parts, tariff), tariff.currency if tariff else ''
        return self.prices[key]

    def _initial_status(self, waiting: bool, channel: Channel, recipient: str) -> tuple[MessageStatus, str]:
        """Opted-out recipients are skipped; the first step that is not goes out, the later ones wait for it."""
        kind = SuppressionKind.EMAIL if channel is Channel.EMAIL else SuppressionKind.PHONE
        if (kind, recipient) in self.suppressed:
            return MessageStatus.SKIPPED, 'The recipient opted out'
        if waiting:
            return MessageStatus.CREATED, 'Waits for the previous channel'
        if self.request.hold:
            return MessageStatus.PAUSED, 'Waits for its task to start'
        return MessageStatus.QUEUED, MessageStatus.QUEUED.description

    def _report(self, index: int, message_id: str, status: MessageStatus, channel: Channel,
                group_id: str | None) -> None:
        self.created.append(CreatedMessage(message_id, index, self.bulk_id, group_id, self.request.flow_id, status,
                                           channel))

    def _notification(self, notification_id: str, destination: Destination, phone: str | None,
                      email: str | None) -> tuple[Any, ...]:
        request = self.request
        zone = request.time_zone
        if request.time_zone_mode is TimeZoneMode.RECIPIENT:
            zone = (phones.phone_time_zone(phone) if phone else None) or zone
        variables = json.dumps(destination.variables, ensure_ascii=False, default=str) if destination.variables else '{}'
        ranges = self.ranges if destination.allowed_time_ranges is None else json.dumps(destination.allowed_time_ranges)
        return (
            notification_id, self.bulk_id, destination.group_id or request.group_id,
            destination.flow_id or request.flow_id, self.task_id,
            self.template_id, destination.external_id, destination.client_id, destination.messenger_user_id, phone,
            email, variables, destination.callback_url or request.callback_url,
            destination.callback_data or request.callback_data, request.use_short_links,
            destination.send_at or request.send_at, ranges, zone, self.now,
        )


def _uuid_or_none(value: uuid.UUID | str | None) -> str | None:
    return str(uuid.UUID(str(value))) if value else None
