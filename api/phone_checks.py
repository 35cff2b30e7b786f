"""Phone checks over the API (twin-api.md): `POST /api/v1/phoneChecks` and `GET /api/v1/phoneChecks?checkId=`."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from domain import hlr
from domain.auth import Actor, Scope
from domain.errors import NotFound

from .auth import scoped
from .wire import ApiModel

router = APIRouter(tags=['Phone checks'])


class CheckIn(ApiModel):
    check_id: Annotated[str, Field(max_length=64)] | None = Field(
        None, description='A check made before: its results are answered again, nothing is checked.')
    phones: list[Annotated[str, Field(max_length=64)] | int] = Field(default_factory=list, max_length=hlr.MAX_NUMBERS)


class ResultOut(ApiModel):
    status: str
    status_code: int


class CheckOut(ApiModel):
    check_id: str
    result: dict[str, ResultOut]


async def _answer(actor: Actor, check_id: str) -> CheckOut:
    results = await hlr.phone_check_results(actor, check_id)
    return CheckOut(check_id=check_id, result={phone: ResultOut(status=row.status, status_code=row.status_code)
                                               for phone, row in results.items()})


@router.post('/phoneChecks', response_model=CheckOut)
async def check_phones(body: CheckIn, actor: Actor = Depends(scoped(Scope.PHONES_CHECK))) -> CheckOut:
    if body.check_id:
        try:
            return await _answer(actor, body.check_id)
        except NotFound:
            if not body.phones:
                raise
    return await _answer(actor, await hlr.check_phones(actor, body.phones))


@router.get('/phoneChecks', response_model=CheckOut)
async def get_check(check_id: str = Query(alias='checkId', max_length=64),
                    actor: Actor = Depends(scoped(Scope.PHONES_CHECK))) -> CheckOut:
    return await _answer(actor, check_id)
