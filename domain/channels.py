"""The channels Herald sends through, and what each step of a channel carries."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Channel(str, Enum):
    SMS = 'sms'
    VIBER = 'viber'
    WHATSAPP = 'whatsapp'
    TELEGRAM = 'telegram'
    EMAIL = 'email'

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def uses_phone(self) -> bool:
        return self is not Channel.EMAIL


_LABELS = {
    Channel.SMS: 'SMS', Channel.VIBER: 'Viber', Channel.WHATSAPP: 'WhatsApp',
    Channel.TELEGRAM: 'Telegram', Channel.EMAIL: 'Email',
}


@dataclass(frozen=True)
class StepField:
    """One parameter of a channel step, as the template form and the API see it."""
    key: str
    label: str
    kind: str = 'text'  # text | textarea | url | email | sender
    required: bool = False
    max_length: int = 1000
    has_variables: bool = False


STEP_FIELDS: dict[Channel, tuple[StepField, ...]] = {
    Channel.SMS: (
        StepField('from', 'Sender name', 'sender', required=True, max_length=15),
        StepField('text', 'Text', 'textarea', required=True, max_length=4000, has_variables=True),
    ),
    Channel.VIBER: (
        StepField('from', 'Sender name', 'sender', required=True, max_length=64),
        StepField('text', 'Text', 'textarea', required=True, max_length=1000, has_variables=True),
        StepField('imageUrl', 'Image URL', 'url', max_length=2000),
        StepField('buttonText', 'Button text', max_length=30),
        StepField('buttonUrl', 'Button URL', 'url', max_length=2000),
    ),
    Channel.WHATSAPP: (
        StepField('templateName', 'Template name', required=True, max_length=512),
        StepField('templateNamespace', 'Namespace', max_length=512),
        StepField('language', 'Language', max_length=16),
        StepField('templateData', 'Template parameters, separated by |', max_length=4000, has_variables=True),
        StepField('text', 'Text', 'textarea', max_length=4096, has_variables=True),
        StepField('mediaUrl', 'Media URL', 'url', max_length=2000),
    ),
    Channel.TELEGRAM: (
        StepField('text', 'Text', 'textarea', required=True, max_length=4096, has_variables=True),
    ),
    Channel.EMAIL: (
        StepField('fromName', 'From name', max_length=200),
        StepField('fromEmail', 'From address', 'email', required=True, max_length=320),
        StepField('replyTo', 'Reply-to', 'email', max_length=320),
        StepField('subject', 'Subject', required=True, max_length=998, has_variables=True),
        StepField('text', 'Text body', 'textarea', max_length=100_000, has_variables=True),
        StepField('html', 'HTML body', 'textarea', max_length=500_000, has_variables=True),
    ),
}

SENDER_CHANNELS = frozenset(ch for ch, fields in STEP_FIELDS.items() if any(f.kind == 'sender' for f in fields))
