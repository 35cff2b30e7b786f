"""Starts and stops the delivery engine: provider routes, the dispatcher, the client callback sender and the periodic
sweeps (APScheduler)."""
from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from domain import events, idempotency, seed, task_import, tasks
from domain.config import settings

from .callbacks import CallbackSender
from .dispatcher import Dispatcher, expire_overdue, recover_in_doubt, release_delayed
from .routes import RouteTable

SWEEPS = ((release_delayed, 1), (expire_overdue, 5), (recover_in_doubt, 30), (tasks.complete_finished_tasks, 2),
          (task_import.discard_abandoned_checks, 3600), (idempotency.delete_expired, 3600))


class Engine:
    def __init__(self) -> None:
        self.routes = RouteTable()
        self.dispatcher = Dispatcher(self.routes, lease_seconds=settings().dispatch_lease_seconds)
        self.callbacks = CallbackSender()
        self.scheduler: AsyncIOScheduler | None = None
        self._unsubscribe_routes = lambda: None

    async def start(self) -> None:
        await seed.ensure_routes()
        await self.routes.load()
        self._unsubscribe_routes = events.subscribe_routes(self.routes.on_routes_changed)
        await recover_in_doubt(older_than=self.dispatcher.lease)
        self.dispatcher.start()
        self.callbacks.start()
        self.scheduler = AsyncIOScheduler()
        for job, seconds in SWEEPS:
            self.scheduler.add_job(job, 'interval', seconds=seconds, misfire_grace_time=60, coalesce=True,
                                   max_instances=1)
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await self.callbacks.stop()
        await self.dispatcher.stop()
        self._unsubscribe_routes()
        await self.routes.close()
