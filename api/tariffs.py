"""Tariffs over the API: `GET/PUT tariffs/{channel}` (twin-api.md names `tariffs/sms`)."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field, StringConstraints

from domain import tariffs
from domain.auth import Actor, Scope
from domain.channels import Channel
from domain.models import Tariff

from .auth import scoped
from .wire import ApiModel, Page, wire_errors, wire_field

router = APIRouter(tags=['Tariffs'])


class TariffOut(ApiModel):
    country: str = Field(description='ISO 3166 alpha-2 code, or "*" for any other country.')
    country_name: str
    price_per_part: float
    currency: str
    updated_at: str


class TariffRow(ApiModel):
    country: str = Field(pattern=r'^(\*|[A-Za-z]{2})$',
                         description='ISO 3166 alpha-2 code, or "*" for any other country.')
    price_per_part: Decimal | Annotated[str, StringConstraints(max_length=40)]
    currency: str | None = Field(None, max_length=8, description='Herald\'s currency when left out.')


class TariffsBody(ApiModel):
    tariffs: list[TariffRow] = Field(max_length=500)


def tariff_to_api(tariff: Tariff) -> dict[str, Any]:
    return {'country': tariff.country, 'countryName': tariffs.country_name(tariff.country),
            'pricePerPart': float(tariff.price_per_part), 'currency': tariff.currency,
            'updatedAt': tariff.updated_at.isoformat()}


async def _answer(actor: Actor, channel: Channel) -> dict[str, Any]:
    items = [tariff_to_api(tariff) for tariff in await tariffs.list_tariffs(actor, channel)]
    return {'count': len(items), 'items': items}


@router.get('/tariffs/{channel}', response_model=Page[TariffOut])
async def list_tariffs(channel: Channel, actor: Actor = Depends(scoped(Scope.SETTINGS_READ))) -> dict[str, Any]:
    return await _answer(actor, channel)


@router.put('/tariffs/{channel}', response_model=Page[TariffOut])
async def set_tariffs(channel: Channel, body: TariffsBody,
                      actor: Actor = Depends(scoped(Scope.SETTINGS_WRITE))) -> dict[str, Any]:
    """Set these tariffs of the channel, all or none (the channel's other tariffs stay); answers all its tariffs."""
    rows = [(row.country, row.price_per_part, row.currency) for row in body.tariffs]
    with wire_errors(lambda field: wire_field(f'tariffs.{field}')):
        await tariffs.set_tariffs(actor, channel, rows)
    return await _answer(actor, channel)
