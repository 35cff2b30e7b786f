"""What a provider is, as the engine sees it. Modules in providers/ implement `Provider`; domain/ and
scheduler/ use only this protocol and never import a provider's SDK."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from .channels import Channel
from .statuses import MessageStatus


@dataclass(frozen=True)
class SettingField:
    """One setting of a provider: drives the settings form and the TOML `settings` table."""
    key: str
    label: str
    kind: str = 'text'  # text | secret | int | float | bool | choice
    default: Any = None
    required: bool = False
    help: str = ''
    choices: tuple[str, ...] = ()


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


ReportSink = Callable[[bytes, Mapping[str, str]], Awaitable[None]]
"""Where a provider that reports by itself (the simulator) posts a webhook body: the same path real webhooks take."""


class Provider(Protocol):
    """Constructed as `ProviderClass(route_name, settings, report_sink)` once per route; `settings` are already
    validated against `settings_schema` (see providers.registry.validate_settings)."""
    name: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]
    settings_schema: ClassVar[tuple[SettingField, ...]]

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        """Hand the batch over; one result per message, in any order. Never raises for one message's failure."""

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[DeliveryReport]:
        """Delivery reports in a webhook request; raises `WebhookRejected` for a request that is not genuine."""

    async def close(self) -> None:
        """Release connections."""


class WebhookRejected(Exception):
    """A webhook request that failed verification or could not be parsed."""


class ProviderConfigError(Exception):
    """A route's settings do not fit its provider."""
