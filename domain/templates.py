"""Notification templates: validation, variables, the SMS/Viber preview, and the template service."""
from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from tortoise.transactions import in_transaction

from . import audit, phones, senders, sms, tariffs
from .auth import Actor, Permission
from .channels import SENDER_CHANNELS, STEP_FIELDS, Channel, StepField
from .errors import NotFound, ValidationError
from .models import ProviderRoute, Template, TimeZoneMode

MAX_NAME_LENGTH = 200
MAX_VALIDITY_MINUTES = 2880
SORTABLE = ('name', 'created_at', 'updated_at')
ENTITY = 'template'

_TIME_RE = re.compile(r'^([01]\d|2[0-3]):([0-5]\d)$')
_END_OF_DAY = '24:00'
_PLACEHOLDER_RE = re.compile(r'\{\{(.*?)\}\}')
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


@dataclass
class TemplateInput:
    """What the form or the API submits. `steps` are dicts as stored in `Template.steps`."""
    name: str
    allowed_time_ranges: list[tuple[str, str]]
    time_zone_mode: TimeZoneMode | str = TimeZoneMode.FIXED
    time_zone: str = 'UTC'
    steps: list[dict[str, Any]] = field(default_factory=list)
    use_short_links: bool = False  # URLs in SMS and Viber texts become short links

    @classmethod
    def of(cls, template: Template) -> TemplateInput:
        ranges = [(start, end) for start, end in template.allowed_time_ranges]
        return cls(name=template.name, allowed_time_ranges=ranges, time_zone_mode=template.time_zone_mode,
                   time_zone=template.time_zone, steps=[dict(step) for step in template.steps],
                   use_short_links=template.use_short_links)


@cache
def time_zones() -> list[str]:
    """The IANA time zones, sorted."""
    return sorted(available_timezones())


# --- variables ---------------------------------------------------------------------------------------------------

def variables_in(text: str) -> list[str]:
    """The `{{name}}` placeholders of a text, in order of first use (malformed ones are left out)."""
    if not text or '{{' not in text:
        return []
    names = (match.strip() for match in _PLACEHOLDER_RE.findall(text or ''))
    return list(dict.fromkeys(name for name in names if _NAME_RE.match(name)))


def render(text: str, variables: dict[str, Any]) -> str:
    """The text with each `{{name}}` replaced by its value; `missing_variables` says beforehand what is absent."""
    if '{{' not in text:
        return text
    return _PLACEHOLDER_RE.sub(lambda match: str(variables.get(match.group(1).strip(), match.group(0))), text)


def missing_variables(texts: list[str], variables: dict[str, Any]) -> list[str]:
    return [name for text in texts for name in variables_in(text) if variables.get(name) in (None, '')]


def template_variables(steps: list[dict[str, Any]]) -> list[str]:
    """The variables of every step's text fields, in cascade order."""
    names = (name for step in steps for name in _step_variables(step))
    return list(dict.fromkeys(names))


def _step_variables(step: dict[str, Any]) -> list[str]:
    fields = STEP_FIELDS.get(_channel_or_none(step.get('channel')), ())
    return list(dict.fromkeys(name for f in fields if f.has_variables
                              for name in variables_in(str(step.get(f.key) or ''))))


def _placeholder_error(text: str) -> str | None:
    if '{' not in text and '}' not in text:
        return None
    for match in _PLACEHOLDER_RE.findall(text):
        if not _NAME_RE.match(match.strip()):
            return (f'“{{{{{match}}}}}” is not a valid variable: use letters, digits and underscores, '
                    f'starting with a letter or underscore.')
    rest = _PLACEHOLDER_RE.sub('', text)
    if '{{' in rest or '}}' in rest:
        return 'Unbalanced braces: write variables as {{name}}.'
    return None


# --- validation --------------------------------------------------------------------------------------------------

async def validate(data: TemplateInput, template_id: uuid.UUID | None = None) -> TemplateInput:
    """The cleaned input, or ValidationError with keys 'name', 'time_ranges[.i]', 'time_zone', 'steps[.i.field]'.

    `template_id` is the template being edited (its own name is not a duplicate)."""
    errors: dict[str, str] = {}
    name = await _clean_name(data.name, template_id, errors)
    ranges = clean_ranges(data.allowed_time_ranges, errors)
    mode, zone = _clean_zone(data.time_zone_mode, data.time_zone, errors)
    steps = await _clean_steps(data.steps, errors)
    if errors:
        raise ValidationError(errors)
    return TemplateInput(name=name, allowed_time_ranges=ranges, time_zone_mode=mode, time_zone=zone, steps=steps,
                         use_short_links=bool(data.use_short_links))


async def _clean_name(value: str, template_id: uuid.UUID | None, errors: dict[str, str]) -> str:
    name = (value or '').strip()
    if not name:
        errors['name'] = 'Enter a template name.'
    elif len(name) > MAX_NAME_LENGTH:
        errors['name'] = f'Use at most {MAX_NAME_LENGTH} characters.'
    elif await _name_taken(name, template_id):
        errors['name'] = f'A template named “{name}” already exists.'
    return name


async def _name_taken(name: str, template_id: uuid.UUID | None) -> bool:
    same_name = Template.filter(name__iexact=name)
    if template_id:
        same_name = same_name.exclude(id=template_id)
    return await same_name.exists()


def minutes_of_day(value: str, end: bool) -> int | None:
    if end and value == _END_OF_DAY:
        return 24 * 60
    match = _TIME_RE.match(value)
    return int(match[1]) * 60 + int(match[2]) if match else None


def clean_ranges(ranges: list[tuple[str, str]], errors: dict[str, str]) -> list[tuple[str, str]]:
    if not ranges:
        errors['time_ranges'] = 'Add at least one time range.'
        return []
    parsed: list[tuple[int, int, int]] = []
    for i, (start, end) in enumerate(ranges):
        start, end = (start or '').strip(), (end or '').strip()
        start_minutes, end_minutes = minutes_of_day(start, end=False), minutes_of_day(end, end=True)
        if start_minutes is None or end_minutes is None:
            errors[f'time_ranges.{i}'] = 'Enter times as HH:MM (00:00 to 24:00).'
        elif start_minutes >= end_minutes:
            errors[f'time_ranges.{i}'] = 'The start must be before the end.'
        else:
            parsed.append((start_minutes, end_minutes, i))
    parsed.sort()
    for (_, previous_end, _), (start_minutes, _, i) in zip(parsed, parsed[1:]):
        if start_minutes < previous_end:
            errors[f'time_ranges.{i}'] = 'This range overlaps another one.'
    return [(_hhmm(start), _hhmm(end)) for start, end, _ in parsed]


def _hhmm(minutes: int) -> str:
    return f'{minutes // 60:02d}:{minutes % 60:02d}'


def _clean_zone(mode: TimeZoneMode | str, zone: str, errors: dict[str, str]) -> tuple[TimeZoneMode, str]:
    try:
        mode = TimeZoneMode(mode)
    except ValueError:
        errors['time_zone'] = 'Choose a fixed time zone or the recipient’s local time.'
        return TimeZoneMode.FIXED, 'UTC'
    zone = (zone or '').strip()
    if mode is TimeZoneMode.RECIPIENT and not zone:
        return mode, 'UTC'
    if zone not in time_zones():
        errors['time_zone'] = f'“{zone}” is not a known time zone.' if zone else 'Choose a time zone.'
    return mode, zone


async def _clean_steps(steps: list[dict[str, Any]], errors: dict[str, str]) -> list[dict[str, Any]]:
    if not steps:
        errors['steps'] = 'Add at least one channel.'
    cleaned, seen = [], set()
    for i, step in enumerate(steps):
        channel = _channel_or_none(step.get('channel'))
        if channel is None:
            errors[f'steps.{i}.channel'] = f'Unknown channel “{step.get("channel")}”.'
            continue
        if channel in seen:
            errors[f'steps.{i}.channel'] = f'{channel.label} is used twice: each channel may appear once.'
        seen.add(channel)
        cleaned.append(await _clean_step(i, channel, step, errors))
    return cleaned


async def clean_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Channel steps given inline (API, task files), validated as a template's are."""
    errors: dict[str, str] = {}
    cleaned = await _clean_steps(steps, errors)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _channel_or_none(value: Any) -> Channel | None:
    try:
        return Channel(value)
    except ValueError:
        return None


async def _clean_step(i: int, channel: Channel, step: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    approved = set(await senders.approved_names(channel)) if channel in SENDER_CHANNELS else set()
    for key, message in step_errors(channel, step, approved).items():
        errors[f'steps.{i}.{key}'] = message
    cleaned: dict[str, Any] = {'channel': channel.value}
    for step_field in STEP_FIELDS[channel]:
        if value := str(step.get(step_field.key) or '').strip():
            cleaned[step_field.key] = value
    if route := str(step.get('provider') or '').strip():
        if message := await _route_error(channel, route):
            errors[f'steps.{i}.provider'] = message
        cleaned['provider'] = route
    cleaned['validityPeriod'] = clean_validity(step.get('validityPeriod'), f'steps.{i}.validityPeriod', errors)
    cleaned['required'] = bool(step.get('required'))
    return cleaned


async def _route_error(channel: Channel, name: str) -> str | None:
    """Why a step cannot go through the provider route it names (`provider`: a route of Channels & providers)."""
    route = await ProviderRoute.get_or_none(name=name)
    if route is None:
        return f'There is no provider route named "{name}".'
    if route.channel is not channel:
        return f'The route "{name}" sends {route.channel.label}, not {channel.label}.'
    return None


def step_errors(channel: Channel, step: dict[str, Any], approved_senders: Collection[str]) -> dict[str, str]:
    """What is wrong with a step's fields (field key → message); synchronous, so task files' rows are checked in
    worker processes with the approved sender names fetched once."""
    errors: dict[str, str] = {}
    for step_field in STEP_FIELDS[channel]:
        value = str(step.get(step_field.key) or '').strip()
        if message := _field_error(channel, step_field, value, approved_senders):
            errors[step_field.key] = message
    if channel is Channel.EMAIL and not (str(step.get('text') or '').strip() or str(step.get('html') or '').strip()):
        errors.setdefault('text', 'An email needs a text body or an HTML body.')
    return errors


def _field_error(channel: Channel, step_field: StepField, value: str, approved_senders: Collection[str]) -> str | None:
    if not value:
        return f'Enter the {step_field.label.lower()}.' if step_field.required else None
    if len(value) > step_field.max_length:
        return f'Use at most {step_field.max_length} characters.'
    if step_field.kind == 'url':
        parts = urlsplit(value)
        if parts.scheme not in ('http', 'https') or not parts.netloc:
            return 'Enter a web address starting with http:// or https://.'
    if step_field.kind == 'email' and not phones.is_valid_email(value):
        return 'Enter a valid email address.'
    if step_field.kind == 'sender':
        return _sender_error(channel, value, approved_senders)
    if step_field.has_variables:
        return _placeholder_error(value)
    return None


def _sender_error(channel: Channel, name: str, approved_senders: Collection[str]) -> str | None:
    if channel is Channel.SMS and not (senders.SMS_ALPHANUMERIC.fullmatch(name) or senders.SMS_NUMERIC.fullmatch(name)):
        return 'An SMS sender name is up to 11 Latin letters, digits, spaces or . - _, or up to 15 digits.'
    if name not in approved_senders:
        return f'“{name}” is not an approved sender name for {channel.label}.'
    return None


def clean_validity(value: Any, key: str, errors: dict[str, str]) -> int | None:
    """Whole minutes from 1 to MAX_VALIDITY_MINUTES, or None when empty; a bad value adds an error under `key`."""
    if value is None or value == '':
        return None
    try:
        minutes = float(value)
        if minutes == int(minutes) and 1 <= minutes <= MAX_VALIDITY_MINUTES:
            return int(minutes)
    except (TypeError, ValueError, OverflowError):
        pass
    errors[key] = f'Enter whole minutes from 1 to {MAX_VALIDITY_MINUTES}, or leave it empty.'
    return None


# --- preview -----------------------------------------------------------------------------------------------------

async def preview(step: dict[str, Any], country: str | None = None) -> dict[str, Any]:
    """What one recipient's message of this step looks like: variables, encoding and parts (SMS), characters left
    in the current part (or message), and the estimated cost from the country's (else the '*') tariff."""
    channel = Channel(step['channel'])
    text = str(step.get('text') or '')
    if channel is Channel.SMS:
        info = sms.analyze(text)
        encoding, parts, remaining = info.encoding, info.parts, info.remaining
    else:
        limit = next((f.max_length for f in STEP_FIELDS[channel] if f.key == 'text'), 0)
        encoding, parts, remaining = None, 1, limit - len(text)
    tariff = await tariffs.find_tariff(channel, country)
    cost = tariffs.cost(parts, tariff) if tariff else None
    return {
        'variables': _step_variables(step), 'encoding': encoding, 'parts': parts, 'remaining': remaining,
        'cost': cost, 'currency': tariff.currency if tariff else '',
        'cost_text': f'{tariffs.plain(cost)} {tariff.currency}' if tariff else 'no tariff',
    }


# --- descriptions ------------------------------------------------------------------------------------------------

def cascade_label(steps: list[dict[str, Any]]) -> str:
    """The channels in cascade order, e.g. 'SMS → Email'."""
    return ' → '.join(Channel(step['channel']).label for step in steps)


def schedule_label(template: Template) -> str:
    """The sending time, e.g. '09:00–12:00, 14:00–18:00 (Europe/Moscow)'."""
    ranges = ', '.join(f'{start}–{end}' for start, end in template.allowed_time_ranges)
    zone = 'recipient’s local time' if template.time_zone_mode == TimeZoneMode.RECIPIENT else template.time_zone
    return f'{ranges} ({zone})'


# --- service -----------------------------------------------------------------------------------------------------

def parse_id(value: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value.strip())
    except (AttributeError, ValueError):
        return None


async def search_templates(actor: Actor, query: str = '', sort: str = 'created_at', descending: bool = True,
                           offset: int = 0, limit: int = 20) -> tuple[int, list[Template]]:
    """(total, one page) of templates: a full id finds that template, other text matches part of the name."""
    actor.require(Permission.VIEW)
    queryset = Template.all()
    query = (query or '').strip()
    if template_id := parse_id(query):
        queryset = queryset.filter(id=template_id)
    elif query:
        queryset = queryset.filter(name__icontains=query)
    column = sort if sort in SORTABLE else 'created_at'
    prefix = '-' if descending else ''
    total = await queryset.count()
    page = await queryset.order_by(f'{prefix}{column}', f'{prefix}id').offset(max(offset, 0)).limit(max(limit, 0))
    return total, page


async def get_template(actor: Actor, template_id: uuid.UUID | str) -> Template:
    actor.require(Permission.VIEW)
    parsed = parse_id(template_id)
    template = await Template.get_or_none(id=parsed) if parsed else None
    if template is None:
        raise NotFound(f'There is no template with id “{template_id}”.')
    return template


def _snapshot(data: TemplateInput) -> dict[str, Any]:
    """The stored fields, JSON-shaped (lists, not tuples), for saving and for the audit diff."""
    return {'name': data.name, 'allowed_time_ranges': [list(r) for r in data.allowed_time_ranges],
            'time_zone_mode': TimeZoneMode(data.time_zone_mode), 'time_zone': data.time_zone,
            'steps': data.steps, 'use_short_links': data.use_short_links}


async def create_template(actor: Actor, data: TemplateInput) -> Template:
    actor.require(Permission.MANAGE_TEMPLATES)
    values = _snapshot(await validate(data))
    async with in_transaction():
        template = await Template.create(**values, created_by_id=actor.user_id)
        await audit.record(actor, 'create', ENTITY, template.id, f'Created template “{template.name}”', values)
    return template


async def update_template(actor: Actor, template_id: uuid.UUID | str, data: TemplateInput) -> Template:
    actor.require(Permission.MANAGE_TEMPLATES)
    template = await get_template(actor, template_id)
    before = _snapshot(TemplateInput.of(template))
    after = _snapshot(await validate(data, template.id))
    changes = audit.diff(before, after)
    if changes:
        async with in_transaction():
            await template.update_from_dict(after).save()
            await audit.record(actor, 'update', ENTITY, template.id, f'Changed template “{template.name}”', changes)
    return template


async def delete_template(actor: Actor, template_id: uuid.UUID | str) -> None:
    actor.require(Permission.MANAGE_TEMPLATES)
    template = await get_template(actor, template_id)
    async with in_transaction():
        await template.delete()
        await audit.record(actor, 'delete', ENTITY, template.id, f'Deleted template “{template.name}”')


# --- API shape ---------------------------------------------------------------------------------------------------

def template_to_api(template: Template) -> dict[str, Any]:
    """The twin-api.md shape: channels map each channel to its settings, in cascade order."""
    channels = {step['channel']: {key: value for key, value in step.items() if key != 'channel'}
                for step in template.steps}
    return {
        'id': str(template.id),
        'name': template.name,
        'channels': channels,
        'allowedTimeRanges': [[f'{start}:00', f'{end}:00'] for start, end in template.allowed_time_ranges],
        'timeZoneMode': TimeZoneMode(template.time_zone_mode).value,
        'timeZone': template.time_zone,
        'useShortLinks': template.use_short_links,
        'createdAt': template.created_at.isoformat(),
        'updatedAt': template.updated_at.isoformat(),
    }
