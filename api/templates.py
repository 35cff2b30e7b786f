"""Templates over the API (`GET/POST templates`, `GET/PUT/DELETE templates/{id}`, twin-api.md shape)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, StrictBool, StringConstraints

from domain import templates
from domain.auth import Actor, Scope
from domain.channels import Channel
from domain.models import TimeZoneMode

from .auth import scoped
from .wire import ApiModel, Page, Paging, TimeRanges, ranges_from_wire, wire_errors, wire_field

router = APIRouter(tags=['Templates'])


StepValue = Annotated[str, StringConstraints(max_length=500_000)] | int | float | bool | None
Step = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], StepValue], Field(max_length=40)]


class TemplateBody(ApiModel):
    name: str = Field(min_length=1, max_length=1000)
    channels: dict[Channel, Step] = Field(
        min_length=1, description='Each channel\'s settings (twin-api.md step fields), in cascade order.')
    allowed_time_ranges: TimeRanges = Field(
        min_length=1, description='Sending windows as [["09:00:00", "22:00:00"], ...].')
    time_zone: str = Field('UTC', max_length=64)
    time_zone_mode: TimeZoneMode = TimeZoneMode.FIXED
    use_short_links: StrictBool = False

    def to_input(self) -> templates.TemplateInput:
        steps = [{**fields, 'channel': channel.value} for channel, fields in self.channels.items()]
        return templates.TemplateInput(name=self.name, allowed_time_ranges=ranges_from_wire(self.allowed_time_ranges),
                                       time_zone_mode=self.time_zone_mode, time_zone=self.time_zone, steps=steps,
                                       use_short_links=self.use_short_links)

    def field(self, key: str) -> str:
        """`steps.1.text` → `channels.email.text`; other keys as `wire_field` names them."""
        head, _, rest = key.partition('.')
        if head != 'steps' or not rest:
            return wire_field(key)
        index, _, name = rest.partition('.')
        path = f'channels.{list(self.channels)[int(index)].value}'
        return path if name in ('', 'channel') else f'{path}.{name}'


class TemplateOut(ApiModel):
    id: str
    name: str
    channels: dict[str, dict[str, Any]]
    allowed_time_ranges: list[list[str]]
    time_zone_mode: str
    time_zone: str
    use_short_links: bool = False
    created_at: str
    updated_at: str


@router.get('/templates', response_model=Page[TemplateOut])
async def list_templates(paging: Paging = Depends(), name: str = Query('', max_length=200),
                         actor: Actor = Depends(scoped(Scope.TEMPLATES_READ))) -> dict[str, Any]:
    total, page = await templates.search_templates(actor, name, sort='created_at', descending=True,
                                                   offset=paging.offset, limit=paging.limit)
    return {'count': total, 'items': [templates.template_to_api(t) for t in page]}


@router.get('/templates/{template_id}', response_model=TemplateOut)
async def get_template(template_id: str, actor: Actor = Depends(scoped(Scope.TEMPLATES_READ))) -> dict[str, Any]:
    return templates.template_to_api(await templates.get_template(actor, template_id))


@router.post('/templates', response_model=TemplateOut, status_code=201)
async def create_template(body: TemplateBody, actor: Actor = Depends(scoped(Scope.TEMPLATES_WRITE))) -> dict[str, Any]:
    with wire_errors(body.field):
        return templates.template_to_api(await templates.create_template(actor, body.to_input()))


@router.put('/templates/{template_id}', response_model=TemplateOut)
async def update_template(template_id: str, body: TemplateBody,
                          actor: Actor = Depends(scoped(Scope.TEMPLATES_WRITE))) -> dict[str, Any]:
    with wire_errors(body.field):
        return templates.template_to_api(await templates.update_template(actor, template_id, body.to_input()))


@router.delete('/templates/{template_id}', status_code=204, response_class=Response)
async def delete_template(template_id: str, actor: Actor = Depends(scoped(Scope.TEMPLATES_WRITE))) -> None:
    await templates.delete_template(actor, template_id)
