"""Domain events: every batch of status changes is published here, for live pages and other listeners."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .channels import Channel
from .statuses import MessageStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessageChanged:
    message_id: str
    notification_id: str
    channel: Channel
    status: MessageStatus
    at: datetime


Listener = Callable[[list[MessageChanged]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call `listener` with each batch of changes; returns the function that unsubscribes it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def publish(changes: list[MessageChanged]) -> None:
    """Listeners must be quick (queue the work): this runs on the dispatcher's path."""
    if not changes:
        return
    for listener in list(_listeners):
        try:
            listener(changes)
        except Exception:  # noqa: BLE001 - one broken listener must not stop delivery
            log.exception('A listener of message changes failed')
