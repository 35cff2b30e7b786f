"""Domain events: every batch of status changes is published here, for live pages and other listeners; and every
change of the provider routes, for the engine.

With several Herald processes on one PostgreSQL database, `domain.event_bridge` is this module's forwarder: it hands
the events published here to the other processes, and `deliver`s theirs to the listeners here (never forwarded
again)."""
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


@dataclass(frozen=True)
class RoutesChanged:
    """Provider routes were created, changed or deleted (`names`, old and new): the engine reloads its routes."""
    names: tuple[str, ...]


RoutesListener = Callable[[RoutesChanged], None]
_route_listeners: list[RoutesListener] = []


@dataclass(frozen=True)
class TaskChanged:
    """A task was created, changed, started, paused, resumed, completed, canceled or deleted."""
    task_id: str


TaskListener = Callable[[TaskChanged], None]
_task_listeners: list[TaskListener] = []


Event = list[MessageChanged] | RoutesChanged | TaskChanged
Forwarder = Callable[[Event], None]
_forwarder: Forwarder | None = None


def forward_to(forwarder: Forwarder | None) -> None:
    """Also hand every event published in this process to `forwarder` (quick: it only queues), or stop with None."""
    global _forwarder  # noqa: PLW0603
    _forwarder = forwarder


def deliver(event: Event) -> None:
    """Call this process's listeners only: for an event another process published."""
    if isinstance(event, RoutesChanged):
        _notify(_route_listeners, event, 'route changes')
    elif isinstance(event, TaskChanged):
        _notify(_task_listeners, event, 'task changes')
    elif event:
        _notify(_listeners, event, 'message changes')


def _publish(event: Event) -> None:
    deliver(event)
    if _forwarder is not None:
        try:
            _forwarder(event)
        except Exception:  # noqa: BLE001 - the other processes miss it; this one's delivery goes on
            log.exception('Forwarding an event to the other Herald processes failed')


def _add(listeners: list, listener: Callable) -> Callable[[], None]:
    listeners.append(listener)
    return lambda: listeners.remove(listener) if listener in listeners else None


def _notify(listeners: list, event: object, what: str) -> None:
    for listener in list(listeners):
        try:
            listener(event)
        except Exception:  # noqa: BLE001 - one broken listener must not stop the others (nor delivery)
            log.exception('A listener of %s failed', what)


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call `listener` with each batch of changes; returns the function that unsubscribes it."""
    return _add(_listeners, listener)


def publish(changes: list[MessageChanged]) -> None:
    """Listeners must be quick (queue the work): this runs on the dispatcher's path."""
    if changes:
        _publish(changes)


def subscribe_routes(listener: RoutesListener) -> Callable[[], None]:
    """Call `listener` after each committed change of provider routes; returns the function that unsubscribes it."""
    return _add(_route_listeners, listener)


def publish_routes(event: RoutesChanged) -> None:
    _publish(event)


def subscribe_tasks(listener: TaskListener) -> Callable[[], None]:
    """Call `listener` after each committed change of a task; returns the function that unsubscribes it."""
    return _add(_task_listeners, listener)


def publish_task(event: TaskChanged) -> None:
    _publish(event)
