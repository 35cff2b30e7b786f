"""Tokens for API clients: `POST /api/v1/auth/login` and `POST /api/v1/auth/refresh` (public: ApiGuard lets them
through; wrong credentials answer 401, a locked account 429)."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import Field

from domain import auth

from .wire import ApiModel

router = APIRouter(tags=['Authentication'])
_PUBLIC = {'security': []}  # OpenAPI: these two need no bearer token
_TTL = Field(auth.TOKEN_TTL, ge=auth.MIN_TOKEN_TTL, le=auth.MAX_TOKEN_TTL,
             description='Lifetime of the auth token in seconds.')


class LoginRequest(ApiModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)
    ttl: int = _TTL


class RefreshRequest(ApiModel):
    refresh_token: str = Field(max_length=4096)
    ttl: int = _TTL


class Tokens(ApiModel):
    auth_token: str = Field(description='A JWT for `Authorization: Bearer`; its `exp` claim is its expiry.')
    refresh_token: str = Field(description='Exchange it at /auth/refresh for a new pair.')


def _answer(pair: auth.TokenPair | None, message: str) -> Tokens:
    if pair is None:
        raise HTTPException(status_code=401, detail=message, headers={'WWW-Authenticate': 'Bearer'})
    return Tokens(auth_token=pair.auth_token, refresh_token=pair.refresh_token)


@router.post('/auth/login', response_model=Tokens, response_model_by_alias=True, openapi_extra=_PUBLIC,
             responses={401: {'description': 'Wrong email or password'}, 429: {'description': 'Account locked'}})
async def login(body: LoginRequest) -> Tokens:
    return _answer(await auth.login(body.email, body.password, body.ttl), 'Wrong email or password.')


@router.post('/auth/refresh', response_model=Tokens, response_model_by_alias=True, openapi_extra=_PUBLIC,
             responses={401: {'description': 'Invalid or expired refresh token'}})
async def refresh(body: RefreshRequest) -> Tokens:
    return _answer(await auth.refresh(body.refresh_token, body.ttl), 'The refresh token is invalid or expired.')
