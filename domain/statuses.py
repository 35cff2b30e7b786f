"""Message statuses: stable numeric codes and descriptions, and the one table of allowed transitions
(DESIGN.md "Message statuses"). Every status change goes through `can_move`."""
from __future__ import annotations

from enum import Enum


class MessageStatus(str, Enum):
    CREATED = 'CREATED'
    QUEUED = 'QUEUED'
    DELAYED = 'DELAYED'
    PAUSED = 'PAUSED'
    SENT = 'SENT'
    PENDING = 'PENDING'
    DELIVERED = 'DELIVERED'
    READ = 'READ'
    UNDELIVERED = 'UNDELIVERED'
    ERROR = 'ERROR'
    SKIPPED = 'SKIPPED'
    CANCELED = 'CANCELED'
    EXPIRED = 'EXPIRED'

    @property
    def code(self) -> int:
        return _CODES[self]

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @classmethod
    def from_code(cls, code: int) -> MessageStatus:
        return _BY_CODE[code]


_CODES = {status: number for number, status in enumerate(MessageStatus, start=1)}
_BY_CODE = {number: status for status, number in _CODES.items()}
_DESCRIPTIONS = {
    MessageStatus.CREATED: 'Created, not yet sent',
    MessageStatus.QUEUED: 'In the queue for sending',
    MessageStatus.DELAYED: 'Waiting for the allowed sending time',
    MessageStatus.PAUSED: 'Processed, not sent: its task is paused',
    MessageStatus.SENT: 'Accepted for sending by the provider',
    MessageStatus.PENDING: 'Sent, waiting for the delivery report',
    MessageStatus.DELIVERED: 'Delivered to the recipient',
    MessageStatus.READ: 'Read by the recipient',
    MessageStatus.UNDELIVERED: 'Sent but not delivered',
    MessageStatus.ERROR: 'Error while sending',
    MessageStatus.SKIPPED: 'Not sent: not needed or recipient opted out',
    MessageStatus.CANCELED: 'Canceled by a user',
    MessageStatus.EXPIRED: 'No delivery report within the validity period',
}
TERMINAL = frozenset({
    MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.UNDELIVERED, MessageStatus.ERROR,
    MessageStatus.SKIPPED, MessageStatus.CANCELED, MessageStatus.EXPIRED,
})

_S = MessageStatus
PRE_SEND = frozenset({_S.CREATED, _S.QUEUED, _S.DELAYED, _S.PAUSED})
_GIVE_UP = frozenset({_S.SKIPPED, _S.CANCELED, _S.EXPIRED, _S.ERROR})
_REPORTED = frozenset({_S.PENDING, _S.DELIVERED, _S.READ, _S.UNDELIVERED})

TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    _S.CREATED: frozenset({_S.QUEUED, _S.DELAYED, _S.PAUSED}) | _GIVE_UP,
    # A window closes or a task pauses and resumes; a provider may answer synchronously, or a delivery report
    # may overtake the SENT write.
    _S.QUEUED: frozenset({_S.DELAYED, _S.PAUSED, _S.SENT}) | _GIVE_UP | _REPORTED,
    _S.DELAYED: frozenset({_S.QUEUED, _S.PAUSED}) | _GIVE_UP,
    _S.PAUSED: frozenset({_S.QUEUED, _S.DELAYED}) | _GIVE_UP,
    _S.SENT: _REPORTED | {_S.ERROR, _S.EXPIRED},
    _S.PENDING: frozenset({_S.DELIVERED, _S.READ, _S.UNDELIVERED, _S.EXPIRED}),
    _S.DELIVERED: frozenset({_S.READ}),
    _S.READ: frozenset(),
    _S.UNDELIVERED: frozenset(),
    _S.ERROR: frozenset(),
    _S.SKIPPED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.EXPIRED: frozenset(),
}
_SOURCES = {new: frozenset(old for old, targets in TRANSITIONS.items() if new in targets) for new in MessageStatus}
# Pre-send statuses share the lowest ranks (CREATED below the others); every allowed move keeps or raises the rank.
_RANKS = {
    _S.CREATED: 0, _S.QUEUED: 1, _S.DELAYED: 1, _S.PAUSED: 1, _S.SENT: 2, _S.PENDING: 3,
    _S.DELIVERED: 4, _S.UNDELIVERED: 4, _S.ERROR: 4, _S.SKIPPED: 4, _S.CANCELED: 4, _S.EXPIRED: 4, _S.READ: 5,
}


def can_move(old: MessageStatus, new: MessageStatus) -> bool:
    """Whether a message in `old` may change to `new` (a repeated status is no change: False)."""
    return new in TRANSITIONS[old]


def sources(new: MessageStatus) -> frozenset[MessageStatus]:
    """The statuses a message may move to `new` from: the guard of a batched `UPDATE … WHERE status IN (…)`."""
    return _SOURCES[new]


def rank(status: MessageStatus) -> int:
    """How far along a status is: a message's rank never decreases."""
    return _RANKS[status]
