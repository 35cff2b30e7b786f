"""Telegram through the Bot API's sendMessage (https://core.telegram.org/bots/api#sendmessage).

The recipient is a chat id: a number, or @channelname for a public channel. The Bot API has no delivery receipts:
an `ok` answer means Telegram has put the message in the chat, so the message is DELIVERED at once and never READ.
Its provider message id is "<chat id>:<message id>".

The bot token is part of every request's URL (https://api.telegram.org/bot<token>/sendMessage), so it is masked in
every error this provider returns and in httpx's request log.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import httpx

from domain.channels import Channel
from domain.providers import (
    DeliveryReport,
    OutgoingMessage,
    SendFailed,
    SendResult,
    SettingField,
    WebhookRejected,
    WebhookRequest,
)
from domain.statuses import MessageStatus

from .http import TIMEOUT, HttpProvider

TOKEN = re.compile(r'\d+:[A-Za-z0-9_-]+')
TOKEN_IN_PATH = re.compile(r'/bot\d+:[A-Za-z0-9_-]+')
MASK = '<bot token>'


class _MaskTokens(logging.Filter):
    """httpx logs each request's URL at INFO level: a bot token in it is masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(arg) for arg in record.args)
        return True


def _masked(arg: object) -> object:
    return TOKEN_IN_PATH.sub(f'/bot{MASK}', str(arg)) if isinstance(arg, (str, httpx.URL)) else arg


logging.getLogger('httpx').addFilter(_MaskTokens())


class TelegramProvider(HttpProvider):
    name: ClassVar[str] = 'telegram'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.TELEGRAM})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('bot_token', 'Bot token', 'secret', required=True,
                     help='The token @BotFather gave the bot, like 123456789:AAH…'),
        SettingField('base_url', 'API address', default='https://api.telegram.org',
                     help='The Bot API server; change it only for a local Bot API server.'),
        SettingField('parse_mode', 'Text formatting', 'choice', default='none', choices=('none', 'HTML', 'MarkdownV2'),
                     help='How Telegram reads markup in the text: none sends it as plain text.'),
        SettingField('disable_notification', 'Send silently', 'bool', default=False,
                     help='Recipients get the message without a sound.'),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = super().check_settings(settings)
        if not TOKEN.fullmatch(settings['bot_token']):
            errors['bot_token'] = 'expected the token @BotFather gave, like 123456789:AAH…'
        return errors

    def request(self, message: OutgoingMessage) -> httpx.Request:
        chat_id = message.recipient.strip()
        if not chat_id:
            raise SendFailed('No Telegram chat id')
        if not message.text.strip():
            raise SendFailed('A Telegram message needs a text')
        body: dict[str, Any] = {'chat_id': chat_id, 'text': message.text}
        if self.settings['parse_mode'] != 'none':
            body['parse_mode'] = self.settings['parse_mode']
        if self.settings['disable_notification']:
            body['disable_notification'] = True
        return self.client.build_request('POST', self.endpoint(f'bot{self.settings["bot_token"]}/sendMessage'),
                                         json=body)

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        answer = response.json()
        if not answer.get('ok'):
            raise SendFailed(_describe(answer), transient=answer.get('error_code') == 429)
        result = answer['result']
        return SendResult(message.id, True, f'{result["chat"]["id"]}:{result["message_id"]}',
                          status=MessageStatus.DELIVERED)

    def refusal(self, response: httpx.Response) -> str:
        try:
            answer = response.json()
        except ValueError:
            return super().refusal(response)
        return _describe(answer) if isinstance(answer, dict) else super().refusal(response)

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        token = self.settings['bot_token']
        return [replace(result, error=result.error.replace(token, MASK)) if token in result.error else result
                for result in await super().send(batch)]

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        raise WebhookRejected('Telegram sends no delivery reports')


def _describe(answer: dict[str, Any]) -> str:
    """Telegram's words for an error answer, with when to retry a flood-limited one."""
    text = f'Telegram {answer.get("error_code", "error")}: {answer.get("description") or "no description"}'
    if retry_after := (answer.get('parameters') or {}).get('retry_after'):
        text += f' (retry after {retry_after} s)'
    return text
