"""Showing stored values to a user: times in the browser's time zone (stored in UTC)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nicegui import context, ui

TIME_ZONE_COOKIE = 'herald_tz'
_SCRIPT = ('<script>document.cookie = "' + TIME_ZONE_COOKIE + '=" + encodeURIComponent('
           'Intl.DateTimeFormat().resolvedOptions().timeZone) + ";path=/;SameSite=Lax";</script>')


def remember_browser_time_zone() -> None:
    """Every page tells the server the browser's time zone in a cookie, read by `user_zone`."""
    ui.add_head_html(_SCRIPT, shared=True)


def user_zone() -> ZoneInfo:
    name = context.client.request.cookies.get(TIME_ZONE_COOKIE, 'UTC') if context.client.request else 'UTC'
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo('UTC')


def format_datetime(value: datetime | None) -> str:
    return value.astimezone(user_zone()).strftime('%Y-%m-%d %H:%M') if value else ''
