"""Templates over the API: `GET /api/v1/templates` and `GET /api/v1/templates/{id}` (twin-api.md shape)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from domain import templates
from domain.auth import Actor
from domain.errors import NotFound

from .auth import api_actor

router = APIRouter()


@router.get('/templates')
async def list_templates(limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0), name: str = '',
                         actor: Actor = Depends(api_actor)) -> dict[str, Any]:
    total, page = await templates.search_templates(actor, name, sort='created_at', descending=True,
                                                   offset=offset, limit=limit)
    return {'count': total, 'items': [templates.template_to_api(t) for t in page]}


@router.get('/templates/{template_id}', response_model=None)
async def get_template(template_id: str, actor: Actor = Depends(api_actor)) -> dict[str, Any] | JSONResponse:
    try:
        return templates.template_to_api(await templates.get_template(actor, template_id))
    except NotFound as error:
        return JSONResponse({'error': {'message': str(error)}}, status_code=404)
