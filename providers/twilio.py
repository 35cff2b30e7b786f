"""SMS and WhatsApp through Twilio's Programmable Messaging REST API (2010-04-01 Messages resource).

A message is a form POST to /2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP Basic auth (Account SID,
Auth Token); Twilio answers 201 with the message's `sid`. Its StatusCallback requests are form POSTs signed with
X-Twilio-Signature: Base64(HMAC-SHA1(Auth Token, the full URL followed by every POST parameter, sorted by name,
as name then value)), checked here against the URL Twilio called.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl

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

SIGNATURE_HEADER = 'X-Twilio-Signature'
RATE_LIMITED = '20429'
ACCOUNT_SID = re.compile(r'AC[0-9a-fA-F]{32}')
SERVICE_SID = re.compile(r'MG[0-9a-fA-F]{32}')
E164 = re.compile(r'\+[1-9]\d{6,14}')
# Twilio's message statuses (queued, sending, sent, accepted, scheduled… say nothing of delivery). `failed` means
# Twilio could not send it at all, hence ERROR; `undelivered` means the carrier could not deliver it.
REPORTED = {
    'delivered': MessageStatus.DELIVERED,
    'read': MessageStatus.READ,
    'undelivered': MessageStatus.UNDELIVERED,
    'failed': MessageStatus.ERROR,
}


class TwilioProvider(HttpProvider):
    name: ClassVar[str] = 'twilio'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS, Channel.WHATSAPP})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('account_sid', 'Account SID', required=True, help='AC… from the Twilio Console.'),
        SettingField('auth_token', 'Auth token', 'secret', required=True,
                     help='Authenticates requests to Twilio and verifies its status callbacks.'),
        SettingField('from_number', 'From number', default='',
                     help='E.164 number messages come from (WhatsApp: the WhatsApp-enabled number, without '
                          '"whatsapp:"). Empty: SMS go out under the step\'s sender name.'),
        SettingField('messaging_service_sid', 'Messaging Service SID', default='',
                     help='MG…: when set, Twilio picks the sender from the service instead of the From number.'),
        SettingField('base_url', 'API address', default='https://api.twilio.com'),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = super().check_settings(settings)
        if not ACCOUNT_SID.fullmatch(settings['account_sid']):
            errors['account_sid'] = 'expected AC followed by 32 hexadecimal digits'
        if settings['messaging_service_sid'] and not SERVICE_SID.fullmatch(settings['messaging_service_sid']):
            errors['messaging_service_sid'] = 'expected MG followed by 32 hexadecimal digits'
        if settings['from_number'] and not E164.fullmatch(settings['from_number']):
            errors['from_number'] = 'expected an E.164 number such as +14155238886'
        return errors

    def request(self, message: OutgoingMessage) -> httpx.Request:
        s = self.settings
        whatsapp = message.channel is Channel.WHATSAPP
        prefix = 'whatsapp:' if whatsapp else ''
        form = {'To': prefix + message.recipient, 'StatusCallback': webhook_url(self.name, self.route_name)}
        if s['messaging_service_sid']:
            form['MessagingServiceSid'] = s['messaging_service_sid']
        elif s['from_number'] or (message.sender and not whatsapp):
            form['From'] = prefix + (s['from_number'] or message.sender)
        else:
            raise SendFailed('No sender: set the route\'s From number or Messaging Service SID')
        if message.text:
            form['Body'] = message.text
        if whatsapp and message.params.get('mediaUrl'):
            form['MediaUrl'] = message.params['mediaUrl']
        if 'Body' not in form and 'MediaUrl' not in form:
            raise SendFailed('Twilio needs a text or a media URL')
        credentials = base64.b64encode(f'{s["account_sid"]}:{s["auth_token"]}'.encode()).decode()
        url = self.endpoint(f'2010-04-01/Accounts/{s["account_sid"]}/Messages.json')
        return self.client.build_request('POST', url, data=form, headers={
            'Authorization': f'Basic {credentials}', 'Accept': 'application/json'})

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        sid = response.json()['sid']
        if not isinstance(sid, str) or not sid:
            raise ValueError('no message sid')
        return SendResult(message.id, True, sid)

    def refusal(self, response: httpx.Response) -> str:
        error = _error(response)
        text = f'Twilio error {error["code"]}: {error["message"]}' if error else super().refusal(response)
        return text.replace(self.settings['auth_token'], '***')

    def transient(self, response: httpx.Response) -> bool:
        """Twilio's 20429 (too many requests) is retried whatever the HTTP status it came with."""
        error = _error(response)
        return super().transient(response) or bool(error) and str(error['code']) == RATE_LIMITED

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        try:
            params = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=bool(request.body))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected('malformed Twilio status callback') from None
        expected = signature(self.settings['auth_token'], request.url, params)
        if not hmac.compare_digest(request.header(SIGNATURE_HEADER).encode(), expected.encode()):
            raise WebhookRejected('bad or missing X-Twilio-Signature')
        fields = dict(params)
        sid, status = fields.get('MessageSid', ''), fields.get('MessageStatus', '')
        if not sid or not status:
            raise WebhookRejected('a status callback without MessageSid or MessageStatus')
        if status not in REPORTED:
            return []
        code = fields.get('ErrorCode', '')
        description = f'Twilio: {status}' + (f', error {code}' if code and code != '0' else '')
        return [DeliveryReport(sid, REPORTED[status], description)]


def _error(response: httpx.Response) -> dict[str, Any] | None:
    """Twilio's error object, {code, message, more_info, status}, or None when the answer is not one."""
    try:
        error = response.json()
    except ValueError:
        return None
    return error if isinstance(error, dict) and 'code' in error and 'message' in error else None


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature over a URL and its POST parameters."""
    data = url + ''.join(name + value for name, value in sorted(params, key=lambda item: item[0]))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()
