"""The API's error answers: `{"error": {"message": ..., "fields": {field: message}}}` with the fitting status code."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from domain.errors import HeraldError, LoginThrottled, NotFound, PermissionDenied, ValidationError

_STATUS = {ValidationError: 422, PermissionDenied: 403, NotFound: 404, LoginThrottled: 429}


def error_response(status_code: int, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, object] = {'message': message}
    if fields:
        error['fields'] = fields
    return JSONResponse({'error': error}, status_code=status_code, headers=headers)


def field_path(location: tuple[int | str, ...]) -> str:
    """`('body', 'messages', 0, 'destinations')` → `messages[0].destinations`."""
    path = ''
    for part in location[1:] if location and location[0] in ('body', 'query', 'path', 'header') else location:
        path += f'[{part}]' if isinstance(part, int) else f'.{part}' if path else str(part)
    return path or 'body'


def _is_api(request: Request) -> bool:
    return request.url.path.startswith('/api/')


async def _herald_error(request: Request, error: HeraldError) -> JSONResponse:
    fields = error.errors if isinstance(error, ValidationError) else None
    status_code = next((code for kind, code in _STATUS.items() if isinstance(error, kind)), 400)
    return error_response(status_code, str(error), fields)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    if not _is_api(request):
        return await request_validation_exception_handler(request, error)
    fields: dict[str, str] = {}
    for problem in error.errors():
        fields.setdefault(field_path(tuple(problem.get('loc', ()))), problem.get('msg', 'Invalid value.'))
    return error_response(422, 'The request has invalid fields.', fields)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    if not _is_api(request):
        return await http_exception_handler(request, error)
    return error_response(error.status_code, str(error.detail), headers=getattr(error, 'headers', None))


def install(app: FastAPI) -> None:
    """Answer the API's errors in its JSON shape; a HeraldError a route lets through becomes 422/403/404/429."""
    app.add_exception_handler(HeraldError, _herald_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
