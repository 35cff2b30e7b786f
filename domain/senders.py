"""Sender names: operators request them, admins approve or reject them; only approved names send."""
from __future__ import annotations

import re

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from . import audit
from .auth import Actor, Permission, now
from .channels import SENDER_CHANNELS, Channel
from .errors import NotFound, ValidationError
from .models import SenderName, SenderStatus

ENTITY = 'sender_name'
SMS_ALPHANUMERIC = re.compile(r'(?=.*[A-Za-z])[A-Za-z0-9 ._-]{1,11}')
SMS_NUMERIC = re.compile(r'[0-9]{1,15}')
VIBER_MAX_LENGTH = 64
SORTABLE = frozenset({'name', 'channel', 'status', 'created_at', 'decided_at'})


async def approved_names(channel: Channel) -> list[str]:
    """The approved sender names of a channel, sorted."""
    rows = await SenderName.filter(channel=channel, status=SenderStatus.APPROVED).order_by('name').values_list('name', flat=True)
    return list(rows)


async def is_approved(channel: Channel, name: str) -> bool:
    return await SenderName.filter(channel=channel, name=name, status=SenderStatus.APPROVED).exists()


def _sender_channel(value: Channel | str) -> Channel:
    try:
        channel = Channel(value)
    except ValueError:
        channel = None
    if channel not in SENDER_CHANNELS:
        labels = ', '.join(sorted(c.label for c in SENDER_CHANNELS))
        raise ValidationError({'channel': f'Sender names are registered for {labels} only.'})
    return channel


def _name_error(name: str, channel: Channel) -> str | None:
    if not name:
        return 'Enter the sender name.'
    if channel is Channel.SMS and not (SMS_ALPHANUMERIC.fullmatch(name) or SMS_NUMERIC.fullmatch(name)):
        return ('An SMS sender name is up to 11 Latin letters, digits, spaces or . - _ with at least one letter, '
                'or a number of up to 15 digits.')
    if len(name) > VIBER_MAX_LENGTH:
        return f'A Viber sender name has at most {VIBER_MAX_LENGTH} characters.'
    return None


def _state(sender: SenderName) -> dict[str, str]:
    return {'name': sender.name, 'channel': sender.channel.value, 'status': sender.status.value,
            'comment': sender.comment}


async def request_sender(actor: Actor, name: str, channel: Channel | str, comment: str = '') -> SenderName:
    """Request a name for a channel; a rejected name may be requested again, which reopens it."""
    actor.require(Permission.REQUEST_SENDER)
    channel = _sender_channel(channel)
    name, comment = name.strip(), comment.strip()
    if error := _name_error(name, channel):
        raise ValidationError({'name': error})
    async with in_transaction():
        sender = await SenderName.filter(name=name, channel=channel).select_for_update().first()
        if sender is None:
            sender = await _create(actor, name, channel, comment)
        else:
            await _reopen(actor, sender, comment)
    return sender


async def request_senders(actor: Actor, wanted: list[tuple[str, Channel | str, str]]) -> list[SenderName]:
    """Request each (name, channel, comment) not yet known; known names (requested, approved or rejected) are left as
    they are. All or none: a ValidationError's fields are `<index>.<field>`. Answers each name once, as it stands."""
    _, known = await list_senders(actor, limit=None)
    by_key = {(sender.name, sender.channel): sender for sender in known}
    keys: dict[tuple[str, Channel], None] = {}
    async with in_transaction():
        for i, (name, channel, comment) in enumerate(wanted):
            try:
                key = (name.strip(), _sender_channel(channel))
                if key not in by_key:
                    by_key[key] = await request_sender(actor, name, channel, comment)
            except ValidationError as error:
                raise ValidationError({f'{i}.{field}': message for field, message in error.errors.items()}
                                      ) from error
            keys[key] = None
    return [by_key[key] for key in keys]


async def _create(actor: Actor, name: str, channel: Channel, comment: str) -> SenderName:
    try:
        sender = await SenderName.create(name=name, channel=channel, comment=comment, requested_by_id=actor.user_id)
    except IntegrityError as error:  # the same name requested at the same moment
        raise ValidationError({'name': f'"{name}" has just been requested for {channel.label}.'}) from error
    await audit.record(actor, 'request', ENTITY, sender.id, f'Requested sender name "{name}" for {channel.label}',
                       audit.diff({}, _state(sender)))
    return sender


async def _reopen(actor: Actor, sender: SenderName, comment: str) -> None:
    where = f'"{sender.name}" for {sender.channel.label}'
    if sender.status is SenderStatus.REQUESTED:
        raise ValidationError({'name': f'{where} has already been requested and awaits a decision.'})
    if sender.status is SenderStatus.APPROVED:
        raise ValidationError({'name': f'{where} is already approved.'})
    before = _state(sender)
    sender.status, sender.comment = SenderStatus.REQUESTED, comment
    sender.requested_by_id, sender.decided_by_id, sender.decided_at = actor.user_id, None, None
    await sender.save()
    await audit.record(actor, 'request', ENTITY, sender.id, f'Requested rejected sender name {where} again',
                       audit.diff(before, _state(sender)))


async def decide_sender(actor: Actor, sender_id: int, approve: bool, comment: str = '') -> SenderName:
    """Approve or reject a requested name; a rejection must say why."""
    actor.require(Permission.DECIDE_SENDER)
    comment = comment.strip()
    if not approve and not comment:
        raise ValidationError({'comment': 'Say why the name is rejected.'})
    async with in_transaction():
        sender = await _get(sender_id, lock=True)
        if sender.status is not SenderStatus.REQUESTED:
            raise ValidationError({'status': f'"{sender.name}" is already {sender.status.value}.'})
        before = _state(sender)
        sender.status = SenderStatus.APPROVED if approve else SenderStatus.REJECTED
        sender.comment = comment or sender.comment
        sender.decided_by_id, sender.decided_at = actor.user_id, now()
        await sender.save()
        action, done = ('approve', 'Approved') if approve else ('reject', 'Rejected')
        await audit.record(actor, action, ENTITY, sender.id,
                           f'{done} sender name "{sender.name}" for {sender.channel.label}',
                           audit.diff(before, _state(sender)))
    return sender


async def delete_sender(actor: Actor, sender_id: int) -> None:
    actor.require(Permission.DECIDE_SENDER)
    async with in_transaction():
        sender = await _get(sender_id, lock=True)
        state = _state(sender)
        await sender.delete()
        await audit.record(actor, 'delete', ENTITY, sender_id,
                           f'Deleted sender name "{sender.name}" for {sender.channel.label}',
                           audit.diff(state, dict.fromkeys(state)))


async def _get(sender_id: int, lock: bool = False) -> SenderName:
    query = SenderName.filter(id=sender_id)
    sender = await (query.select_for_update() if lock else query).first()
    if sender is None:
        raise NotFound('This sender name no longer exists.')
    return sender


async def list_senders(actor: Actor, status: SenderStatus | None = None, channel: Channel | None = None,
                       search: str = '', sort: str | None = 'created_at', descending: bool = True,
                       offset: int = 0, limit: int | None = 20) -> tuple[int, list[SenderName]]:
    """One page of sender names (with who requested and decided them) and the count of all that match."""
    actor.require(Permission.VIEW)
    query = SenderName.all()
    if status:
        query = query.filter(status=status)
    if channel:
        query = query.filter(channel=channel)
    if search.strip():
        query = query.filter(name__icontains=search.strip())
    field = sort if sort in SORTABLE else 'created_at'
    page = query.order_by(f'{"-" if descending else ""}{field}', '-id').offset(offset)
    if limit:
        page = page.limit(limit)
    return await query.count(), await page.select_related('requested_by', 'decided_by')
