"""Failover between the routes of a channel: a route with a backup keeps a share of the channel's traffic that falls
to nothing while its provider fails and drifts back as it recovers (as GOV.UK Notify shifts SMS traffic between
its providers).

Each route's recent hand-overs are judged: a call that failed for the provider's sake (unreachable, 5xx, throttled,
broken mid-call) or took longer than `SLOW_CALL_SECONDS` counts against it; a message the provider refused on its
merits (an invalid number) does not. When at least `TRIP_FAILURES` of the last `WINDOW` messages failed and they
are at least half, the route trips: its share drops to 0 and the backup carries the traffic. After a cool-down a
probe share (`PROBE_SHARE` of the channel's batches) goes to it again; each `STEP_SECONDS` in which it sent without a
failure doubles its share until it has it all. A probe that fails trips it again, with a cool-down twice as long (up
to `MAX_COOLDOWN_SECONDS`).

The state is this process's own view of the providers it calls (several processes each judge for themselves).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

WINDOW = 20
TRIP_FAILURES = 5
SLOW_CALL_SECONDS = 10.0
COOLDOWN_SECONDS = 10.0
MAX_COOLDOWN_SECONDS = 300.0
PROBE_SHARE = 0.1
STEP_SECONDS = 5.0


class RouteState(str, Enum):
    HEALTHY = 'healthy'
    FAILING = 'failing'  # tripped: its backup carries the traffic
    RECOVERING = 'recovering'  # taking back its share


@dataclass
class RouteHealth:
    """One route's recent calls and the share of its channel's traffic it keeps."""
    clock: Callable[[], float] = time.monotonic
    share: float = 1.0
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))  # True: the message failed
    cooldown: float = 0.0
    tripped_at: float | None = None
    last_step: float = 0.0
    latency: float | None = None  # seconds per call, smoothed
    error: str = ''
    proven: bool = False  # a call succeeded since its share last grew

    @property
    def state(self) -> RouteState:
        if self.tripped_at is not None and self.share == 0:
            return RouteState.FAILING
        return RouteState.RECOVERING if self.share < 1 else RouteState.HEALTHY

    def record(self, sent: int, failed: int, seconds: float, error: str = '') -> None:
        """A call's outcome: `failed` of its `sent` messages failed for the provider's sake."""
        self.latency = seconds if self.latency is None else 0.8 * self.latency + 0.2 * seconds
        slow = seconds > SLOW_CALL_SECONDS
        failures = sent if slow else failed
        if failures:
            self.error = f'Calls took {seconds:.0f} s' if slow and not failed else error
        now = self.clock()
        if self.tripped_at is not None:
            if failures and self.share > 0:  # a probe failed (calls begun before it tripped do not count)
                self._trip(now, 2 * self.cooldown)
            elif sent and self.share > 0:
                self.proven = True
            return
        self.outcomes.extend([True] * failures + [False] * (sent - failures))
        if sum(self.outcomes) >= TRIP_FAILURES and 2 * sum(self.outcomes) >= len(self.outcomes):
            self._trip(now, COOLDOWN_SECONDS)

    def current_share(self) -> float:
        """The share of traffic to give it now: nothing while it cools down, then more each calm step."""
        if self.tripped_at is None:
            return self.share
        now = self.clock()
        if self.share == 0:
            if now - self.tripped_at >= self.cooldown:
                self.share, self.last_step = PROBE_SHARE, now
        elif self.proven and now - self.last_step >= STEP_SECONDS:
            self.share, self.last_step, self.proven = min(1.0, self.share * 2), now, False
            if self.share == 1:
                self.tripped_at, self.error = None, ''
        return self.share

    def _trip(self, now: float, cooldown: float) -> None:
        self.share, self.tripped_at, self.cooldown = 0.0, now, min(cooldown, MAX_COOLDOWN_SECONDS)
        self.proven = False
        self.outcomes.clear()


_health: dict[str, RouteHealth] = {}


def health(route_name: str) -> RouteHealth:
    """The route's health in this process (kept across route reloads, by name)."""
    if route_name not in _health:
        _health[route_name] = RouteHealth()
    return _health[route_name]


def forget(route_names: set[str]) -> None:
    """Drop the health of routes that are gone."""
    for name in set(_health) - route_names:
        del _health[name]
