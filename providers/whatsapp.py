"""WhatsApp through Meta's WhatsApp Cloud API (Graph API: POST /{version}/{phone-number-id}/messages).

A step with a template name sends that template (language from the step, else the route's default): its body
parameters {{1}}, {{2}}, … are the step's `templateData` values (what task files fill from "template parameters"),
and a media URL becomes the template's image, video or document header. A step without a template name sends its
text, or its media URL as an image, video, audio or document message (by the file's extension) with the text as
caption: Meta accepts these only inside a chat the recipient opened in the last 24 hours.

Status notifications come to the route's webhook address: Meta verifies the address with a GET carrying
hub.verify_token (the route's verify token) and hub.challenge, and signs each POST with X-Hub-Signature-256, an
HMAC-SHA256 of the body keyed with the app secret. delivered → DELIVERED, read → READ, failed → UNDELIVERED; sent and
incoming messages change nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

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

SIGNATURE_HEADER = 'X-Hub-Signature-256'
# Rate limits (130429 throughput, 131048 spam, 131056 pair rate, 80007 account) and Meta's "service unavailable"
# (2, 131016): worth another try later. Every other error code is the refusal of that message.
TRANSIENT_CODES = frozenset({130429, 131048, 131056, 80007, 2, 131016})
STATUSES = {'delivered': MessageStatus.DELIVERED, 'read': MessageStatus.READ, 'failed': MessageStatus.UNDELIVERED}
MEDIA_KINDS = {'jpg': 'image', 'jpeg': 'image', 'png': 'image', 'mp4': 'video', '3gp': 'video',
               'aac': 'audio', 'amr': 'audio', 'mp3': 'audio', 'm4a': 'audio', 'ogg': 'audio', 'opus': 'audio'}
HEADER_KINDS = frozenset({'image', 'video'})  # any other file is a document header


class WhatsAppProvider(HttpProvider):
    name: ClassVar[str] = 'whatsapp'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.WHATSAPP})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('access_token', 'Access token', 'secret', required=True,
                     help="A system user's permanent token with the whatsapp_business_messaging permission."),
        SettingField('phone_number_id', 'Phone number ID', required=True,
                     help='WhatsApp Manager → API Setup: the ID of the number messages come from (not the number).'),
        SettingField('app_secret', 'App secret', 'secret', required=True,
                     help='App settings → Basic: status notifications signed with anything else are refused.'),
        SettingField('verify_token', 'Webhook verify token', 'secret', required=True,
                     help="Any secret text: enter the same in the app's Webhooks settings with this route's "
                          'webhook address, and subscribe to the "messages" field.'),
        SettingField('api_version', 'Graph API version', default='v21.0'),
        SettingField('base_url', 'API address', default='https://graph.facebook.com'),
        SettingField('language', 'Default template language', default='en_US',
                     help='Used when a step names no language, e.g. en_US or ru.'),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = super().check_settings(settings)
        if not settings['phone_number_id'].isdigit():
            errors['phone_number_id'] = 'expected the digits of the phone number ID'
        return errors

    def request(self, message: OutgoingMessage) -> httpx.Request:
        s = self.settings
        url = self.endpoint(f'{s["api_version"]}/{s["phone_number_id"]}/messages')
        body = {'messaging_product': 'whatsapp', 'recipient_type': 'individual',
                'to': ''.join(filter(str.isdigit, message.recipient)), **self._content(message)}
        return self.client.build_request('POST', url, json=body,
                                         headers={'Authorization': f'Bearer {s["access_token"]}'})

    def _content(self, message: OutgoingMessage) -> dict[str, Any]:
        params = message.params
        media_url = params.get('mediaUrl') or ''
        if name := params.get('templateName'):
            template: dict[str, Any] = {'name': name, 'language': {'code': params.get('language')
                                                                   or self.settings['language']}}
            if namespace := params.get('templateNamespace'):
                template['namespace'] = namespace
            components = []
            if media_url:
                kind = _media_kind(media_url)
                kind = kind if kind in HEADER_KINDS else 'document'
                components.append({'type': 'header', 'parameters': [{'type': kind, kind: _media(kind, media_url)}]})
            if values := _template_values(params.get('templateData')):
                components.append({'type': 'body', 'parameters': [{'type': 'text', 'text': v} for v in values]})
            if components:
                template['components'] = components
            return {'type': 'template', 'template': template}
        if media_url:
            kind = _media_kind(media_url)
            media = _media(kind, media_url)
            if message.text and kind != 'audio':
                media['caption'] = message.text
            return {'type': kind, kind: media}
        if message.text.strip():
            return {'type': 'text', 'text': {'body': message.text, 'preview_url': False}}
        raise SendFailed('A WhatsApp step needs a template name, a text or a media URL')

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        return SendResult(message.id, True, response.json()['messages'][0]['id'])

    def refusal(self, response: httpx.Response) -> str:
        error = _error(response)
        if not error:
            return super().refusal(response)
        details = (error.get('error_data') or {}).get('details')
        text = f'WhatsApp error {error.get("code")}: {error.get("message") or "no message"}'
        return f'{text} ({details})' if details else text

    def transient(self, response: httpx.Response) -> bool:
        return super().transient(response) or _error(response).get('code') in TRANSIENT_CODES

    def answer_challenge(self, request: WebhookRequest) -> str | None:
        """Meta's check of the webhook address: hub.challenge echoed when hub.verify_token is the route's."""
        if request.method != 'GET' or 'hub.mode' not in request.query:
            return None
        token = request.query.get('hub.verify_token', '')
        if request.query['hub.mode'] != 'subscribe' or not hmac.compare_digest(
                token.encode(), self.settings['verify_token'].encode()):
            raise WebhookRejected('Wrong WhatsApp webhook verify token')
        return request.query.get('hub.challenge', '')

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        expected = 'sha256=' + hmac.new(self.settings['app_secret'].encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.header(SIGNATURE_HEADER).encode(), expected.encode()):
            raise WebhookRejected(f'Missing or wrong {SIGNATURE_HEADER} signature')
        try:
            notification = json.loads(request.body)
            return [report for entry in notification.get('entry', []) for change in entry.get('changes', [])
                    for status in (change.get('value') or {}).get('statuses', [])
                    if (report := _report(status)) is not None]
        except (ValueError, KeyError, AttributeError, TypeError) as error:
            raise WebhookRejected(f'Unreadable WhatsApp notification: {error}') from error


def _media_kind(url: str) -> str:
    extension = urlsplit(url).path.rsplit('.', 1)[-1].lower()
    return MEDIA_KINDS.get(extension, 'document')


def _media(kind: str, url: str) -> dict[str, str]:
    media = {'link': url}
    if kind == 'document':
        media['filename'] = unquote(urlsplit(url).path.rsplit('/', 1)[-1]) or 'document'
    return media


def _template_values(data: Any) -> list[str]:
    """Body parameters: a list, or text with the values separated by | (as task files write them)."""
    if isinstance(data, str):
        data = data.split('|')
    return [str(value).strip() for value in data or []]


def _error(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get('error')
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _report(status: dict[str, Any]) -> DeliveryReport | None:
    moved_to = STATUSES.get(status.get('status'))
    if moved_to is None:
        return None
    errors = status.get('errors') or []
    description = '; '.join(f'{e.get("title") or e.get("message")} ({e.get("code")})' for e in errors)
    at = datetime.fromtimestamp(int(status['timestamp']), timezone.utc) if status.get('timestamp') else None
    return DeliveryReport(str(status['id']), moved_to, description, at=at)
