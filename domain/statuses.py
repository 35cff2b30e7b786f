"""Message statuses: stable numeric codes and descriptions (DESIGN.md "Message statuses")."""
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
