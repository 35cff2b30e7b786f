"""Placeholder until this page is built."""
from __future__ import annotations

from .frame import coming_soon


def create() -> None:
    coming_soon('/settings/audit', 'Audit log')
