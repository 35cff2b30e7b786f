"""Allowed sending time: whether a moment falls in a template's or task's time ranges, and when they next open.

Ranges are wall-clock times in a time zone, so a window keeps its local hours across DST changes. A start that
does not exist on a spring-forward day opens at the first instant after the gap; in a repeated autumn hour a
range opens in both passes."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from .templates import clean_ranges, minutes_of_day

Ranges = Iterable[Sequence[str]]
Zone = str | tzinfo
_SEARCH_DAYS = 4  # a day may lose a range to a DST gap, or (Samoa, 2011) vanish: the next opening is still near


@dataclass(frozen=True, slots=True)
class Window:
    """Allowed ranges as seconds from local midnight, sorted and non-overlapping; none means always open.

    Build one per template or task (`Window.of`) and check any number of messages against it."""
    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, ranges: Ranges) -> Window:
        """From ("HH:MM", "HH:MM") pairs as templates store them (end may be "24:00"); ValueError if invalid."""
        pairs = [tuple(pair) for pair in ranges]
        if not pairs:
            return cls(())
        errors: dict[str, str] = {}
        cleaned = clean_ranges(pairs, errors)
        if errors:
            raise ValueError(' '.join(errors.values()))
        return cls(tuple((minutes_of_day(start, end=False) * 60, minutes_of_day(end, end=True) * 60) for start, end in cleaned))

    def is_open(self, moment: datetime, zone: Zone) -> bool:
        """Whether sending is allowed at `moment` (aware; naive means UTC) in `zone`."""
        return not self.ranges or self._contains(_utc(moment).astimezone(_zone(zone)))

    def next_opening(self, moment: datetime, zone: Zone) -> datetime:
        """`moment` in UTC when the window is open then, else the (UTC) start of the next allowed range."""
        moment, zone = _utc(moment), _zone(zone)
        local = moment.astimezone(zone)
        if not self.ranges or self._contains(local):
            return moment
        for days in range(_SEARCH_DAYS):
            day = local.date() + timedelta(days=days)
            openings = [instant for start, _ in self.ranges for instant in _instants(day, start, zone)
                        if instant > moment and self._contains(instant.astimezone(zone))]
            if openings:
                return min(openings)
        raise AssertionError(f'no opening within {_SEARCH_DAYS} days of {moment} in {zone}')

    def _contains(self, local: datetime) -> bool:
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        for start, end in self.ranges:
            if seconds < start:
                return False
            if seconds < end:
                return True
        return False


def is_open(moment_utc: datetime, ranges: Window | Ranges, zone: Zone) -> bool:
    return window(ranges).is_open(moment_utc, zone)


def next_opening(moment_utc: datetime, ranges: Window | Ranges, zone: Zone) -> datetime:
    return window(ranges).next_opening(moment_utc, zone)


def window(ranges: Window | Ranges) -> Window:
    """The Window of stored ranges, built once per distinct ranges."""
    if isinstance(ranges, Window):
        return ranges
    return _window(tuple(tuple(pair) for pair in ranges))


@lru_cache(maxsize=1024)
def _window(ranges: tuple[tuple[str, str], ...]) -> Window:
    return Window.of(ranges)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _zone(zone: Zone) -> tzinfo:
    return zone if isinstance(zone, tzinfo) else ZoneInfo(zone)


def _instants(day: date, seconds: int, zone: tzinfo) -> tuple[datetime, ...]:
    """The UTC instants at which the wall clock in `zone` shows `seconds` after midnight of `day`: one, two in a
    repeated hour, or, when that wall time is skipped, the first instant after the gap."""
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    later = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if earlier <= later:
        return (earlier,) if earlier == later else (earlier, later)
    return (_gap_end(later, earlier, zone),)  # PEP 495: in a gap, fold=0 maps past it and fold=1 before it


def _gap_end(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant the clocks jump forward, between `before` (old offset) and `after` (new offset)."""
    offset = after.astimezone(zone).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + timedelta(seconds=(after - before).total_seconds() // 2)
        if middle.astimezone(zone).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return after
