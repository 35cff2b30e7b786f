"""Tariffs: the price of one message part per channel and destination country."""
from __future__ import annotations

from decimal import Decimal

from .channels import Channel
from .models import Tariff

ANY_COUNTRY = '*'


async def find_tariff(channel: Channel, country: str | None) -> Tariff | None:
    """The tariff for a country, else the channel's '*' tariff, else None."""
    countries = [c for c in ((country or '').upper(), ANY_COUNTRY) if c]
    tariffs = {t.country: t for t in await Tariff.filter(channel=channel, country__in=countries)}
    return next((tariffs[c] for c in countries if c in tariffs), None)


def cost(parts: int, tariff: Tariff | None) -> Decimal:
    return Decimal(parts) * tariff.price_per_part if tariff else Decimal(0)
