"""What a provider is, as the engine sees it. Modules in providers/ implement `Provider`; domain/ and
scheduler/ use only this protocol and never import a provider's SDK."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from .channels import Channel
from .config import settings
from .statuses import MessageStatus


@dataclass(frozen=True)
class SettingField:
    """One setting of a provider: drives the settings form and the TOML `settings` table."""
    key: str
    label: str
    kind: str = 'text'  # text | multiline | secret | int | float | bool | choice
    default: Any = None
    required: bool = False
    help: str = ''
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredSettings:
    """A provider's saved settings as a form may show them: without secrets, and which secrets are stored (the form
    says "leave empty to keep")."""
    provider: str
    settings: Mapping[str, Any]
    secrets: frozenset[str]


@dataclass(frozen=True)
class OutgoingMessage:
    """A message handed to a provider: rendered, with its parts counted."""
    id: str
    channel: Channel
    recipient: str
    text: str = ''
    sender: str = ''
    subject: str = ''
    html: str = ''
    parts: int = 1
    params: Mapping[str, Any] = field(default_factory=dict)  # channel extras: imageUrl, buttonText, replyTo, fromName…


@dataclass(frozen=True)
class SendResult:
    """The outcome of handing one message over. `transient` errors are retried with backoff; `in_doubt` means the
    provider may have it (the connection broke mid-hand-over): never retried, flagged for an operator."""
    message_id: str
    accepted: bool
    provider_message_id: str | None = None
    error: str = ''
    transient: bool = False
    in_doubt: bool = False
    status: MessageStatus = MessageStatus.SENT


@dataclass(frozen=True)
class DeliveryReport:
    """A provider's word on a message it accepted, matched by its provider message id."""
    provider_message_id: str
    status: MessageStatus
    description: str = ''
    network: str = ''
    at: datetime | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """An HTTP request to a route's webhook address, as the provider made it. `url` is the address as the provider
    called it (Herald's public URL, so signatures over it verify behind a proxy); `query` holds its parameters."""
    body: bytes = b''
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = 'POST'
    url: str = ''
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        """A header's value, whatever its case ('' when absent)."""
        name = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == name), '')


ReportSink = Callable[[list[DeliveryReport]], Awaitable[None]]
"""Where a provider whose reports do not come by webhook (SMPP's deliver_sm, the simulator's own) hands them."""


def webhook_url(provider: str, route: str) -> str:
    """The address a provider posts a route's delivery reports to (`api/webhooks.py` serves it)."""
    return f'{settings().public_url}/webhooks/{quote(provider, safe="")}/{quote(route, safe="")}'


class Provider(Protocol):
    """Constructed as `ProviderClass(route_name, settings, report_sink)` once per route; `settings` are already
    validated against `settings_schema` (see domain.provider_settings.validate_settings)."""
    name: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]
    settings_schema: ClassVar[tuple[SettingField, ...]]

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        """Hand the batch over; one result per message, in any order. Never raises for one message's failure."""

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        """Delivery reports in a webhook request; raises `WebhookRejected` for a request that is not genuine.
        A provider may also define `answer_challenge(request) -> str | None`: the text to answer a GET that
        verifies the webhook address (WhatsApp Cloud's hub.challenge), or None when it is not one."""

    async def close(self) -> None:
        """Release connections."""


class SendFailed(Exception):
    """Why a message was not handed over (it is not sendable, the provider refused it, no session could be opened):
    retried when `transient`."""

    def __init__(self, error: str, transient: bool = False) -> None:
        super().__init__(error)
        self.transient = transient

    def result(self, message: OutgoingMessage) -> SendResult:
        return SendResult(message.id, False, error=str(self), transient=self.transient)


class WebhookRejected(Exception):
    """A webhook request that failed verification or could not be parsed."""


class ProviderConfigError(Exception):
    """A route's settings do not fit its provider."""
