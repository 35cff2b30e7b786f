"""Before a send: each recipient's problems, and the messages, parts and cost per channel that a request would create
(the send page's confirmation). The message rows are built by enqueue's own code, without writing them, so the
estimate and the real send cannot disagree. Also: the send page's pasted recipient lists."""
from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import phones, tariffs, templates
from .auth import Actor, Permission
from .channels import Channel
from .config import settings
from .enqueue import (
    _MESSAGE_COLUMNS,
    CONTACT_LABELS,
    ROWS_PER_WRITE,
    Destination,
    SendRequest,
    _all_contacts,
    _Batch,
    _Contacts,
    _resolve_template,
    _suppressed,
    contact_field,
)
from .errors import ValidationError
from .statuses import MessageStatus

MAX_RECIPIENTS = 10_000  # per send from the page: larger lists are tasks


def contact_fields(steps: list[dict[str, Any]]) -> list[str]:
    """The contact fields a template's channels need, in cascade order."""
    return list(dict.fromkeys(contact_field(Channel(step['channel'])) for step in steps))


def check_variables(steps: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """ValidationError keyed 'variables.<name>' for every variable of the steps without a value."""
    errors = {f'variables.{name}': f'Enter a value for {{{{{name}}}}}.'
              for name in templates.template_variables(steps) if not str(values.get(name) or '').strip()}
    if errors:
        raise ValidationError(errors)


# --- estimate ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """Why one destination cannot be sent: `field` is the Destination field at fault ('phone', 'email',
    'messenger_user_id' or 'variables')."""
    index: int
    field: str
    reason: str


@dataclass
class Tally:
    messages: int = 0
    parts: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)  # by currency
    unpriced: int = 0  # messages without a tariff

    def add(self, parts: int, cost: Decimal, currency: str, count: int = 1) -> None:
        """`count` messages of `parts` parts costing `cost` each."""
        self.messages += count
        self.parts += parts * count
        if currency:
            self.cost[currency] = self.cost.get(currency, Decimal(0)) + cost * count
        else:
            self.unpriced += count

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        total = cls()
        for tally in tallies:
            total += tally
        return total

    def __iadd__(self, other: Tally) -> Tally:
        return self._merge(other, 1)

    def __isub__(self, other: Tally) -> Tally:
        return self._merge(other, -1)

    def _merge(self, other: Tally, sign: int) -> Tally:
        self.messages += sign * other.messages
        self.parts += sign * other.parts
        self.unpriced += sign * other.unpriced
        for currency, amount in other.cost.items():
            self.cost[currency] = self.cost.get(currency, Decimal(0)) + sign * amount
        return self


@dataclass
class ChannelEstimate:
    channel: Channel
    first: Tally = field(default_factory=Tally)  # sent whatever happens: the recipient's first channel, or required
    fallback: Tally = field(default_factory=Tally)  # sent only when the channels before it do not deliver
    skipped: int = 0  # recipients who opted out


@dataclass
class Estimate:
    recipients: int  # destinations that can be sent to
    channels: list[ChannelEstimate]  # in cascade order
    problems: list[Problem]

    def total(self, kind: str) -> Tally:
        """The sum of every channel's 'first' or 'fallback' tally."""
        return Tally.total(getattr(channel, kind) for channel in self.channels)

    @property
    def skipped(self) -> int:
        return sum(channel.skipped for channel in self.channels)


async def estimate(actor: Actor, request: SendRequest) -> Estimate:
    """What `enqueue` would create for this request, and which destinations it could not send to (with the field at
    fault). Destinations that would repeat a recipient on a channel are problems too: one request reaches a
    recipient once per channel. Large lists are validated in worker processes, as enqueue does."""
    actor.require(Permission.SEND)
    request = await _resolve_template(dataclasses.replace(request))
    steps = await templates.clean_steps(request.steps)
    region = settings().default_region
    contacts = await _all_contacts(request.destinations, region)
    table, suppressed = await tariffs.tariff_table(), await _suppressed(contacts)
    channels = {Channel(step['channel']): ChannelEstimate(Channel(step['channel'])) for step in steps}
    needs = contact_fields(steps)
    problems: list[Problem] = []
    seen: dict[tuple[str, Channel], int] = {}
    for index, (destination, contact) in enumerate(zip(request.destinations, contacts)):
        if index % ROWS_PER_WRITE == 0:  # a fresh batch keeps nothing of the last part; other work gets a turn
            batch = _Batch(request, steps, '', table, suppressed, {})
            batch.seen = seen  # repeated recipients are found across parts too
            await asyncio.sleep(0)
        if isinstance(contact, str):
            problems.append(_contact_problem(index, destination, contact, region))
            continue
        planned = _missing_contact(index, destination, contact, needs, steps) \
            or _planned(batch, index, destination, contact)
        if isinstance(planned, Problem):
            problems.append(planned)
            continue
        for row in planned:
            _count(channels[row['channel']], row)
    accepted = len(request.destinations) - len(problems)
    return Estimate(accepted, list(channels.values()), problems)


def _contact_problem(index: int, destination: Destination, reason: str, region: str) -> Problem:
    """Which of the phone and the email made `normalize_contacts` refuse a destination."""
    if destination.phone not in (None, '') and isinstance(phones.normalize_contacts([(destination.phone, None)],
                                                                                    region)[0], str):
        return Problem(index, 'phone', f'Phone: {reason}')
    return Problem(index, 'email', f'Email: {reason}')


def contact_hint(steps: list[dict[str, Any]]) -> str:
    """What each recipient needs, e.g. 'a phone (SMS, Viber) or an email (Email)'."""
    def channels(contact: str) -> str:
        return ', '.join(Channel(step['channel']).label for step in steps
                         if contact_field(Channel(step['channel'])) == contact)
    return ' or '.join(f'{_article(CONTACT_LABELS[name])} ({channels(name)})' for name in contact_fields(steps))


def _article(noun: str) -> str:
    return f'an {noun}' if noun[0] in 'aeiou' else f'a {noun}'


def _missing_contact(index: int, destination: Destination, contact: _Contacts, needs: list[str],
                     steps: list[dict[str, Any]]) -> Problem | None:
    given = {'phone': contact.phone, 'email': contact.email, 'messenger_user_id': destination.messenger_user_id}
    if any(given[name] for name in needs):
        return None
    return Problem(index, needs[0], f'Enter {contact_hint(steps)}.')


def _planned(batch: _Batch, index: int, destination: Destination, contact: _Contacts) -> list[dict[str, Any]] | Problem:
    """The message rows enqueue would write for one destination, or why it would refuse it."""
    refused = len(batch.rejected)
    batch.add(index, destination, contact)
    if len(batch.rejected) > refused:
        rejected = batch.rejected[-1]
        return Problem(index, rejected.field or 'variables', rejected.reason.capitalize() + '.')
    _, messages, _, _ = batch.drain()
    return [dict(zip(_MESSAGE_COLUMNS, row)) for row in messages]


def _count(channel: ChannelEstimate, row: dict[str, Any]) -> None:
    if row['status'] is MessageStatus.SKIPPED:
        channel.skipped += 1
    elif row['status'] is MessageStatus.QUEUED or row['required']:
        channel.first.add(row['parts'], row['cost'], row['currency'])
    else:
        channel.fallback.add(row['parts'], row['cost'], row['currency'])


# --- pasted recipients -------------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r'[\t;,]')
_PHONE_LIKE = re.compile(r'\+?[0-9][0-9\s().\-/]*')
_MIN_PHONE_DIGITS = 7
TELEGRAM_PREFIX = 'tg:'
HEADERS = {
    'phone': 'phone', 'phone number': 'phone', 'mobile': 'phone', 'msisdn': 'phone',
    'email': 'email', 'e-mail': 'email', 'email address': 'email',
    'external id': 'external_id', 'externalid': 'external_id', 'external_id': 'external_id', 'id': 'external_id',
    'telegram': 'messenger_user_id', 'telegram chat id': 'messenger_user_id', 'messenger user id': 'messenger_user_id',
}


@dataclass
class Pasted:
    destinations: list[Destination]
    errors: list[str]  # 'Line 3: …'


def parse_recipients(text: str, default_region: str | None = None) -> Pasted:
    """Recipients pasted one a line, cells separated by tabs, commas or semicolons. With a header line (Phone, Email,
    External ID, Telegram) cells go by column; without one, a cell with '@' is the email, one starting with 'tg:' the
    Telegram chat ID, the number that looks most like a phone the phone, and what is left the external ID. Values are
    checked later, by `estimate`; errors here are lines that cannot be read."""
    region = default_region or settings().default_region
    lines = [(number, [cell.strip() for cell in _SEPARATORS.split(line)])
             for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    columns: list[str] | None = None
    errors: list[str] = []
    if lines and any(cell.lower() in HEADERS for cell in lines[0][1]):
        number, header = lines.pop(0)
        unknown = [cell for cell in header if cell.lower() not in HEADERS]
        if unknown:
            errors.append(f'Line {number}: unknown column “{unknown[0]}”: columns are Phone, Email, External ID '
                          f'and Telegram.')
        columns = [HEADERS.get(cell.lower(), '') for cell in header]
    destinations = []
    for number, cells in lines:
        values = _by_columns(cells, columns) if columns is not None else _detected(cells, region)
        if isinstance(values, str):
            errors.append(f'Line {number}: {values}')
        else:
            destinations.append(Destination(**values))
    return Pasted(destinations, errors)


def _by_columns(cells: list[str], columns: list[str]) -> dict[str, str] | str:
    if any(cells[len(columns):]):
        return f'more cells than the header has columns ({len(columns)}).'
    return {name: cell for name, cell in zip(columns, cells) if name and cell}


def _detected(cells: list[str], region: str) -> dict[str, str] | str:
    values: dict[str, str] = {}
    rest = []
    for cell in filter(None, cells):
        if '@' in cell:
            name, value = 'email', cell
        elif cell.lower().startswith(TELEGRAM_PREFIX):
            name, value = 'messenger_user_id', cell[len(TELEGRAM_PREFIX):].strip()
        else:
            rest.append(cell)
            continue
        if name in values:
            return f'two {CONTACT_LABELS[name]}s (“{values[name]}” and “{value}”).'
        values[name] = value
    phone = _likeliest_phone(rest, region)
    if phone is not None:
        values['phone'] = phone
        rest.remove(phone)
    if len(rest) > 1:
        return f'cannot tell which of “{"”, “".join(rest)}” is the external ID: give one phone, one email and ' \
               f'one external ID a line, or start with a header line.'
    if rest:
        values['external_id'] = rest[0]
    return values


def _likeliest_phone(cells: list[str], region: str) -> str | None:
    """The cell that is a phone: the only number-like one ('+' and digits, or 7 digits or more), else the first valid
    number, else the first written like a phone (with '+' or separators), else the first number-like one."""
    candidates = [cell for cell in cells if _PHONE_LIKE.fullmatch(cell)
                  and (cell.startswith('+') or sum(c.isdigit() for c in cell) >= _MIN_PHONE_DIGITS)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    valid = [cell for cell in candidates if not isinstance(phones.normalize_contacts([(cell, None)], region)[0], str)]
    return (valid or [cell for cell in candidates if not cell.isdigit()] or candidates)[0]
