"""Tests for domain.windows: allowed sending time ranges, across days, DST changes and recipient time zones."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.phones import phone_time_zone
from domain.windows import Window, is_open, next_opening, window

DAY = [('09:00', '21:00')]
MOSCOW, NEW_YORK = 'Europe/Moscow', 'America/New_York'


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_message_at_23_waits_until_9_next_day() -> None:
    late = utc(2025, 1, 15, 20, 0)  # 23:00 in Moscow (UTC+3)
    assert not is_open(late, DAY, MOSCOW)
    assert next_opening(late, DAY, MOSCOW) == utc(2025, 1, 16, 6, 0)


def test_inside_a_range_is_open_now() -> None:
    noon = utc(2025, 7, 1, 9, 0)
    assert is_open(noon, DAY, MOSCOW)
    assert next_opening(noon, DAY, MOSCOW) == noon


def test_start_is_inclusive_and_end_exclusive() -> None:
    assert is_open(utc(2025, 1, 15, 6, 0), DAY, MOSCOW)
    assert is_open(utc(2025, 1, 15, 17, 59, 59), DAY, MOSCOW)
    assert not is_open(utc(2025, 1, 15, 18, 0), DAY, MOSCOW)
    assert not is_open(utc(2025, 1, 15, 5, 59, 59), DAY, MOSCOW)
    assert next_opening(utc(2025, 1, 15, 5, 59, 59, 999999), DAY, MOSCOW) == utc(2025, 1, 15, 6, 0)


def test_between_two_ranges_waits_for_the_second() -> None:
    ranges = [('09:00', '12:00'), ('14:00', '18:00')]
    assert next_opening(utc(2025, 3, 3, 13, 0), ranges, 'UTC') == utc(2025, 3, 3, 14, 0)
    assert next_opening(utc(2025, 3, 3, 18, 0), ranges, 'UTC') == utc(2025, 3, 4, 9, 0)
    assert next_opening(utc(2025, 3, 3, 3, 0), ranges, 'UTC') == utc(2025, 3, 3, 9, 0)


def test_ranges_are_sorted_and_validated_as_templates_do() -> None:
    assert Window.of([['14:00', '18:00'], ['09:00', '12:00']]).ranges == ((9 * 3600, 12 * 3600), (14 * 3600, 18 * 3600))
    for bad in ([('10:00', '12:00'), ('11:00', '13:00')], [('12:00', '12:00')], [('9am', '5pm')], [('24:00', '24:00')]):
        with pytest.raises(ValueError):
            Window.of(bad)


def test_end_of_day() -> None:
    evening = [('18:00', '24:00')]
    assert is_open(utc(2025, 5, 5, 23, 59, 59), evening, 'UTC')
    assert not is_open(utc(2025, 5, 6, 0, 0), evening, 'UTC')
    assert next_opening(utc(2025, 5, 6, 0, 0), evening, 'UTC') == utc(2025, 5, 6, 18, 0)
    assert all(is_open(utc(2025, 5, 5, hour), [('00:00', '24:00')], NEW_YORK) for hour in range(24))


def test_no_ranges_is_always_open() -> None:
    moment = utc(2025, 5, 5, 3, 0)
    assert is_open(moment, [], MOSCOW)
    assert next_opening(moment, [], MOSCOW) == moment


def test_naive_and_other_zone_moments_are_read_as_the_instant_they_are() -> None:
    assert next_opening(datetime(2025, 1, 15, 20, 0), DAY, MOSCOW) == utc(2025, 1, 16, 6, 0)
    in_tokyo = datetime(2025, 1, 16, 5, 0, tzinfo=ZoneInfo('Asia/Tokyo'))  # 20:00 UTC the day before
    assert next_opening(in_tokyo, DAY, MOSCOW) == utc(2025, 1, 16, 6, 0)
    assert next_opening(in_tokyo, DAY, ZoneInfo(MOSCOW)).tzinfo is UTC


def test_moscow_keeps_utc_plus_3_all_year() -> None:
    for month in (1, 7):
        assert next_opening(utc(2025, month, 1, 0, 0), DAY, MOSCOW) == utc(2025, month, 1, 6, 0)


def test_new_york_keeps_local_hours_across_dst() -> None:
    assert next_opening(utc(2024, 3, 9, 2, 0), DAY, NEW_YORK) == utc(2024, 3, 9, 14, 0)  # EST, UTC-5
    assert next_opening(utc(2024, 3, 10, 2, 0), DAY, NEW_YORK) == utc(2024, 3, 10, 13, 0)  # over the change
    assert next_opening(utc(2024, 11, 3, 2, 0), DAY, NEW_YORK) == utc(2024, 11, 3, 14, 0)  # back to EST
    assert not is_open(utc(2024, 3, 10, 2, 30), DAY, NEW_YORK)  # 21:30 EST on the 9th
    assert is_open(utc(2024, 3, 10, 1, 30), DAY, NEW_YORK)  # 20:30 EST on the 9th
    assert is_open(utc(2024, 3, 11, 0, 30), DAY, NEW_YORK)  # 20:30 EDT on the 10th


def test_a_start_skipped_by_spring_forward_opens_after_the_gap() -> None:
    """New York, 10 March 2024: 02:00 EST jumps to 03:00 EDT (07:00 UTC), so 02:30 does not exist."""
    night = [('02:30', '05:00')]
    assert next_opening(utc(2024, 3, 10, 5, 0), night, NEW_YORK) == utc(2024, 3, 10, 7, 0)
    assert is_open(utc(2024, 3, 10, 7, 0), night, NEW_YORK)
    assert not is_open(utc(2024, 3, 10, 6, 59, 59), night, NEW_YORK)
    assert next_opening(utc(2024, 3, 11, 5, 0), night, NEW_YORK) == utc(2024, 3, 11, 6, 30)  # 02:30 EDT


def test_a_range_inside_the_gap_is_skipped_that_day() -> None:
    assert next_opening(utc(2024, 3, 10, 5, 0), [('02:00', '02:45')], NEW_YORK) == utc(2024, 3, 11, 6, 0)


def test_a_repeated_autumn_hour_opens_twice() -> None:
    """New York, 3 November 2024: 01:00–02:00 happens in EDT (05:00 UTC) and again in EST (06:00 UTC)."""
    short = [('01:30', '01:45')]
    assert next_opening(utc(2024, 11, 3, 4, 0), short, NEW_YORK) == utc(2024, 11, 3, 5, 30)
    assert is_open(utc(2024, 11, 3, 5, 40), short, NEW_YORK)
    assert next_opening(utc(2024, 11, 3, 5, 50), short, NEW_YORK) == utc(2024, 11, 3, 6, 30)
    two = [('01:00', '01:20'), ('01:40', '03:00')]
    assert next_opening(utc(2024, 11, 3, 5, 25), two, NEW_YORK) == utc(2024, 11, 3, 5, 40)  # not 01:00 EST


def test_moscow_clock_changes_of_2011_and_2014() -> None:
    # 27 March 2011 02:00 (UTC+3) jumped to 03:00 (UTC+4), at 23:00 UTC the evening before.
    assert next_opening(utc(2011, 3, 26, 22, 0), [('02:15', '04:00')], MOSCOW) == utc(2011, 3, 26, 23, 0)
    # 26 October 2014 02:00 (UTC+4) went back to 01:00 (UTC+3): 09:00 is an hour later in UTC than the day before.
    assert next_opening(utc(2014, 10, 24, 18, 0), DAY, MOSCOW) == utc(2014, 10, 25, 5, 0)
    assert next_opening(utc(2014, 10, 25, 18, 0), DAY, MOSCOW) == utc(2014, 10, 26, 6, 0)


def test_recipient_local_time_from_the_phone_number() -> None:
    zone = phone_time_zone('+73432123456')  # a Yekaterinburg number (UTC+5)
    assert zone == 'Asia/Yekaterinburg'
    moment = utc(2025, 6, 1, 3, 30)  # 08:30 there, 06:30 in Moscow
    assert not is_open(moment, DAY, zone)
    assert next_opening(moment, DAY, zone) == utc(2025, 6, 1, 4, 0)
    mobile = phone_time_zone('+79123456789')  # a Russian mobile number spans every Russian zone
    assert mobile is None
    assert next_opening(moment, DAY, mobile or MOSCOW) == utc(2025, 6, 1, 6, 0)  # the template's zone applies


def test_window_is_built_once_per_ranges() -> None:
    built = Window.of(DAY)
    assert window(built) is built
    assert window([['09:00', '21:00']]) is window([('09:00', '21:00')]) == built


ZONES = ['UTC', MOSCOW, NEW_YORK, 'Europe/London', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Apia',
         'America/Santiago', 'Asia/Tehran']


@st.composite
def windows(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Up to four sorted, non-overlapping (maybe touching) ranges on whole minutes; maybe none."""
    cuts = sorted(draw(st.lists(st.integers(0, 24 * 60), max_size=8)))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2]) if a < b]
    return [(f'{a // 60:02d}:{a % 60:02d}', f'{b // 60:02d}:{b % 60:02d}') for a, b in pairs]


@settings(max_examples=200, deadline=None)
@given(ranges=windows(), zone=st.sampled_from(ZONES),
       moment=st.datetimes(datetime(2005, 1, 1), datetime(2030, 1, 1)).map(lambda m: m.replace(tzinfo=UTC)))
def test_next_opening_is_the_first_open_minute(ranges: list[tuple[str, str]], zone: str, moment: datetime) -> None:
    """Against a minute-by-minute scan: ranges and (since 2005) offsets are on whole minutes, so whether a window
    is open can only change on a whole UTC minute."""
    opening = next_opening(moment, ranges, zone)
    assert is_open(opening, ranges, zone)
    if opening == moment:
        return
    assert not is_open(moment, ranges, zone)
    assert opening.second == opening.microsecond == 0
    assert opening - moment < timedelta(hours=50)
    minute = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < opening:
        assert not is_open(minute, ranges, zone), minute
        minute += timedelta(minutes=1)
