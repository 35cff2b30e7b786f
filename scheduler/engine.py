"""Starts and stops the delivery engine: provider routes, the dispatcher, the client callback sender and the periodic
sweeps (APScheduler).

A process of the `web` role loads the routes only (its webhooks parse reports with them); `worker` and `all`
dispatch too. The sweeps are singleton jobs: with several processes on PostgreSQL each runs in one process at a
time (`domain.cluster.Singletons`), and moves to another when that one dies."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from domain import events, idempotency, seed, task_import, tasks
from domain.cluster import Singletons
from domain.config import settings

from .callbacks import CallbackSender
from .dispatcher import Dispatcher, expire_overdue, recover_in_doubt, release_delayed
from .routes import RouteTable

SHARE_SECONDS = 5  # how soon the rate limits are shared anew when a dispatching process starts or dies
Job = Callable[[], Awaitable[object]]
SWEEPS: tuple[tuple[Job, int], ...] = (
    (release_delayed, 1), (expire_overdue, 5), (recover_in_doubt, 5), (tasks.complete_finished_tasks, 2),
    (task_import.discard_abandoned_checks, 3600), (idempotency.delete_expired, 3600))


class Engine:
    def __init__(self, dispatching: bool = True) -> None:
        self.dispatching = dispatching
        self.routes = RouteTable()
        self.dispatcher = Dispatcher(self.routes, lease_seconds=settings().dispatch_lease_seconds)
        self.callbacks = CallbackSender()
        self.singletons = Singletons(settings().database_url)
        self.scheduler: AsyncIOScheduler | None = None
        self._unsubscribe_routes = lambda: None

    async def start(self) -> None:
        await seed.ensure_routes()
        await self.routes.load()
        self._unsubscribe_routes = events.subscribe_routes(self.routes.on_routes_changed)
        if not self.dispatching:
            return
        if await self.singletons.holds(recover_in_doubt.__name__):
            await recover_in_doubt(older_than=self.dispatcher.lease)
        self.dispatcher.start()
        self.callbacks.start()
        await self._share_rates()
        self.scheduler = AsyncIOScheduler()
        for job, seconds in SWEEPS:
            self.scheduler.add_job(self._singleton(job), 'interval', seconds=seconds, misfire_grace_time=60,
                                   coalesce=True, max_instances=1, name=job.__name__)
        self.scheduler.add_job(self._share_rates, 'interval', seconds=SHARE_SECONDS, misfire_grace_time=60,
                               coalesce=True, max_instances=1)
        self.scheduler.start()

    async def _share_rates(self) -> None:
        self.routes.share_rates(await self.singletons.dispatchers())

    def _singleton(self, job: Job) -> Job:
        async def run_if_held() -> None:
            if await self.singletons.holds(job.__name__):
                await job()
        return run_if_held

    async def stop(self) -> None:
        if self.scheduler:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.dispatching:
            await self.callbacks.stop()
            await self.dispatcher.stop()
        await self.singletons.close()
        self._unsubscribe_routes()
        await self.routes.close()
