"""Background tasks that stop without breaking the database connection.

A task cancelled while it opens a transaction leaves Tortoise's SQLite connection locked for good (the lock is
taken before the cancellation point and only released on leaving the block), and every later query waits forever.
So background work is cancelled only where it waits (`pause`), never inside database work; `close` waits for the
rest to finish."""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._pausing: set[asyncio.Task] = set()
        self.closing = False

    @property
    def tasks(self) -> frozenset[asyncio.Task]:
        return frozenset(self._tasks)

    def start(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep (or wait for `wake`, at most `seconds`): the one place `close` may cancel a task."""
        task = asyncio.current_task()
        self._pausing.add(task)
        try:
            if wake is None:
                await asyncio.sleep(seconds)
            else:
                await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._pausing.discard(task)

    async def close(self) -> None:
        """Cancel the tasks that are pausing, wait for the others to finish what they are doing."""
        self.closing = True
        while self._tasks:
            for task in self._tasks & self._pausing:
                task.cancel()
            await asyncio.wait(self._tasks, timeout=0.1)
