"""Viber Business Messages through Infobip (POST {base_url}/viber/2/messages, `Authorization: App <API key>`).

The request and report shapes follow Infobip's OpenAPI specification as its generated client libraries carry it
(infobip-api-python-client: ViberMessage, ViberOutboundTextContent, ViberOutboundImageContent, ViberButton,
ViberWebhooks, ViberWebhookReport, ViberSeenReport): one message per request, content TEXT (text, optional button
{title, action}) or IMAGE (mediaUrl, text, optional button), and Herald's message id as Infobip's messageId.

Each message asks Infobip to post its delivery report and its seen report to the route's webhook address with
`?token=` appended: the HMAC-SHA256 (hex) of the route name keyed with the route's webhook secret. Infobip does not
sign its reports, so a report without that token is refused. DELIVERED → DELIVERED, UNDELIVERABLE and REJECTED →
UNDELIVERED, EXPIRED → EXPIRED; a seen report → READ.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
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
    webhook_url,
)
from domain.statuses import MessageStatus

from .http import TIMEOUT, HttpProvider

STATUS_GROUPS = {'PENDING': MessageStatus.PENDING, 'DELIVERED': MessageStatus.DELIVERED,
                 'UNDELIVERABLE': MessageStatus.UNDELIVERED, 'REJECTED': MessageStatus.UNDELIVERED,
                 'EXPIRED': MessageStatus.EXPIRED}


class ViberProvider(HttpProvider):
    name: ClassVar[str] = 'viber'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.VIBER})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('api_key', 'Infobip API key', 'secret', required=True,
                     help='An API key with the viber-bm:message:send scope.'),
        SettingField('base_url', 'Infobip base URL', default='https://api.infobip.com',
                     help='Your personal base URL from the Infobip portal, like https://xxxxx.api.infobip.com.'),
        SettingField('webhook_secret', 'Report secret', 'secret', required=True,
                     help='Any long random text. Herald gives Infobip its report address with ?token= set to the '
                          'HMAC-SHA256 (hex) of the route name keyed with this secret, and refuses reports without '
                          'it. Changing it refuses the reports of messages already sent.'),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = super().check_settings(settings)
        if len(settings['webhook_secret']) < 16:
            errors['webhook_secret'] = 'use at least 16 characters'
        return errors

    @property
    def token(self) -> str:
        return hmac.new(self.settings['webhook_secret'].encode(), self.route_name.encode(), hashlib.sha256).hexdigest()

    def report_url(self) -> str:
        return f'{webhook_url(self.name, self.route_name)}?token={self.token}'

    def request(self, message: OutgoingMessage) -> httpx.Request:
        if not message.sender:
            raise SendFailed('A Viber message needs a sender name')
        report_url = self.report_url()
        body = {'messages': [{
            'sender': message.sender,
            'destinations': [{'to': ''.join(filter(str.isdigit, message.recipient)), 'messageId': message.id}],
            'content': _content(message),
            'webhooks': {'delivery': {'url': report_url, 'intermediateReport': False}, 'seen': {'url': report_url},
                         'contentType': 'application/json'},
        }]}
        return self.client.build_request('POST', self.endpoint('viber/2/messages'),
                                         json=body, headers={'Authorization': f'App {self.settings["api_key"]}'})

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        [sent] = response.json()['messages']
        status = sent.get('status') or {}
        if status.get('groupName') in ('REJECTED', 'UNDELIVERABLE'):
            raise SendFailed(f'Infobip {status.get("name")}: {status.get("description")}')
        return SendResult(message.id, True, sent['messageId'])

    def refusal(self, response: httpx.Response) -> str:
        try:
            answer = response.json()
        except ValueError:
            return super().refusal(response)
        if not isinstance(answer, dict):
            return super().refusal(response)
        if exception := (answer.get('requestError') or {}).get('serviceException'):
            return f'Infobip {exception.get("messageId")}: {exception.get("text")}'
        if 'description' in answer:
            violations = '; '.join(f'{v.get("property")}: {v.get("violation")}' for v in answer.get('violations') or [])
            text = f'Infobip {answer.get("errorCode")}: {answer["description"]}'
            return f'{text} ({violations})' if violations else text
        return super().refusal(response)

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        if not hmac.compare_digest(request.query.get('token', '').encode(), self.token.encode()):
            raise WebhookRejected('Missing or wrong report token')
        try:
            return [report for result in json.loads(request.body)['results'] if (report := _report(result))]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise WebhookRejected(f'Unreadable Infobip report: {error}') from error


def _content(message: OutgoingMessage) -> dict[str, Any]:
    params = message.params
    button_text, button_url = params.get('buttonText'), params.get('buttonUrl')
    if bool(button_text) != bool(button_url):
        raise SendFailed('A Viber button needs both its text and its URL')
    content: dict[str, Any] = {'type': 'TEXT', 'text': message.text}
    if image := params.get('imageUrl'):
        content = {'type': 'IMAGE', 'mediaUrl': image, **({'text': message.text} if message.text else {})}
    if button_text:
        content['button'] = {'title': button_text, 'action': button_url}
    return content


def _report(result: dict[str, Any]) -> DeliveryReport | None:
    if 'seenAt' in result:
        return DeliveryReport(result['messageId'], MessageStatus.READ, at=_time(result.get('seenAt')))
    status = result['status']
    moved_to = STATUS_GROUPS.get(status.get('groupName'))
    if moved_to is None:
        return None
    error = result.get('error') or {}
    reason = error.get('description') if error.get('groupName') not in (None, 'OK') else ''
    description = reason or ('' if moved_to is MessageStatus.DELIVERED else status.get('description') or '')
    return DeliveryReport(result['messageId'], moved_to, description, network=result.get('mccMnc') or '',
                          at=_time(result.get('doneAt')))


def _time(value: str | None) -> datetime | None:
    """Infobip's times look like 2024-05-01T10:00:00.000+0000."""
    try:
        return datetime.strptime(value, '%Y-%m-%dT%H:%M:%S.%f%z') if value else None
    except ValueError:
        return None
