"""The API's OpenAPI description at /api/openapi.json and its Swagger UI at /api/docs (both public)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

OPENAPI_PATH = '/api/openapi.json'
DOCS_PATH = '/api/docs'
ASSETS_PATH = f'{DOCS_PATH}/assets'  # Swagger UI's scripts, served by Herald: the docs work without internet
_ASSETS = Path(fastapi_offline.__file__).parent / 'static'
_DESCRIPTION = ('Herald\'s REST API, in the wire format of the Twin notification API. Every call sends '
                '`Authorization: Bearer <API key or token>`; get a token with `POST /api/v1/auth/login`. '
                'A retried POST with the same `Idempotency-Key` header returns the first answer.')


def schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of the /api/ routes only (pages and internal routes are not part of the API)."""
    if app.openapi_schema is None:
        document = get_openapi(title='Herald API', version='1', description=_DESCRIPTION, routes=app.routes)
        document['paths'] = {path: item for path, item in document['paths'].items() if path.startswith('/api/')}
        document.setdefault('components', {})['securitySchemes'] = {
            'bearer': {'type': 'http', 'scheme': 'bearer', 'description': 'An API key (hk_...) or a token.'}}
        document['security'] = [{'bearer': []}]
        app.openapi_schema = document
    return app.openapi_schema


def install(app: FastAPI) -> None:
    @app.get(OPENAPI_PATH, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(schema(app))

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title='Herald API',
                                   swagger_js_url=f'{ASSETS_PATH}/swagger-ui-bundle.js',
                                   swagger_css_url=f'{ASSETS_PATH}/swagger-ui.css',
                                   swagger_favicon_url=f'{ASSETS_PATH}/favicon.png')

    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS), name='swagger-ui')
