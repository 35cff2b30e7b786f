"""SMS through a Kannel gateway's HTTP sendsms interface (Kannel User's Guide, "Sending SMS": smsbox's
/cgi-bin/sendsms, and "Delivery reports": dlr-mask and dlr-url).

Kannel returns no message id, so the provider message id is Herald's own, carried in the dlr-url together with an
HMAC of it: Kannel does not sign its delivery reports, and the HMAC is what makes a forged report fail. Kannel
calls the dlr-url with GET after replacing its escape codes: %d the report type (1 delivered to the phone,
2 not delivered to the phone, 4 queued on the SMSC, 8 delivered to the SMSC, 16 not delivered to the SMSC),
%A the SMSC's reply, %T the time as a Unix timestamp.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlencode

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
from domain.sms import is_gsm7
from domain.statuses import MessageStatus

from .http import TIMEOUT, HttpProvider

DELIVERED, UNDELIVERED, SMSC_REJECTED = 1, 2, 16
CODING_GSM, CODING_UCS2 = '0', '2'
ACCEPTED_ANSWERS = ('0:', '3:', 'Sent.')  # "0: Accepted for delivery", "3: Queued for later delivery", 1.2's "Sent."
DLR_ESCAPES = '&type=%d&answer=%A&at=%T'


class KannelProvider(HttpProvider):
    name: ClassVar[str] = 'kannel'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('base_url', 'smsbox address', default='http://127.0.0.1:13013',
                     help="Kannel smsbox's sendsms-port; /cgi-bin/sendsms is added."),
        SettingField('username', 'User name', required=True, help='A sendsms-user of the Kannel configuration.'),
        SettingField('password', 'Password', 'secret', required=True),
        SettingField('smsc', 'SMSC id', default='', help='Send through this smsc-id (empty: Kannel routes).'),
        SettingField('dlr_mask', 'Delivery report mask', 'int', default=19,
                     help='Sum of 1 delivered, 2 not delivered, 4 queued on the SMSC, 8 delivered to the SMSC, '
                          '16 rejected by the SMSC. 19 asks for final reports only; 0 asks for none.'),
        SettingField('dlr_secret', 'Delivery report key', 'secret', default='',
                     help='Signs the delivery report address (empty: the password does).'),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = super().check_settings(settings)
        if not 0 <= settings['dlr_mask'] <= 31:
            errors['dlr_mask'] = 'must be between 0 and 31'
        return errors

    def request(self, message: OutgoingMessage) -> httpx.Request:
        s = self.settings
        if not message.text:
            raise SendFailed('An SMS needs a text')
        query = {'username': s['username'], 'password': s['password'], 'to': message.recipient,
                 'text': message.text, 'charset': 'UTF-8',
                 'coding': CODING_GSM if is_gsm7(message.text) else CODING_UCS2}
        if message.sender:
            query['from'] = message.sender
        if s['smsc']:
            query['smsc'] = s['smsc']
        if s['dlr_mask']:
            query['dlr-mask'] = str(s['dlr_mask'])
            query['dlr-url'] = self.report_url(message.id)
        return self.client.build_request('GET', self.endpoint('cgi-bin/sendsms'), params=query)

    def report_url(self, message_id: str) -> str:
        """The dlr-url: Herald's webhook with the message id, its HMAC, and Kannel's escape codes."""
        ours = urlencode({'id': message_id, 'sig': self._sign(message_id)})
        return f'{webhook_url(self.name, self.route_name)}?{ours}{DLR_ESCAPES}'

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        answer = response.text.strip()
        if not answer.startswith(ACCEPTED_ANSWERS):
            raise SendFailed(f'Kannel answered {response.status_code}: {self._clean(answer[:300])}')
        return SendResult(message.id, True, message.id)

    def refusal(self, response: httpx.Response) -> str:
        return self._clean(super().refusal(response))

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        query = request.query
        message_id, kind = query.get('id', ''), query.get('type', '')
        if not message_id or not hmac.compare_digest(query.get('sig', '').encode(),
                                                     self._sign(message_id).encode()):
            raise WebhookRejected('bad or missing delivery report signature')
        if not kind.isdigit():
            raise WebhookRejected(f'delivery report type {kind!r} is not a number')
        status = _status(int(kind))
        if status is None:
            return []
        answer = query.get('answer', '')
        description = f'Kannel report {kind}' + (f': {answer}' if answer else '')
        return [DeliveryReport(message_id, status, description[:500], at=_time(query.get('at', '')))]

    def _sign(self, message_id: str) -> str:
        key = (self.settings['dlr_secret'] or self.settings['password']).encode()
        return hmac.new(key, f'kannel-dlr:{message_id}'.encode(), hashlib.sha256).hexdigest()[:32]

    def _clean(self, text: str) -> str:
        return text.replace(self.settings['password'], '***')


def _status(kind: int) -> MessageStatus | None:
    """Final reports only: 4 (queued on the SMSC) and 8 (delivered to the SMSC) change nothing. A rejection by
    the SMSC means the message never reached the network: an error, not an undelivered message."""
    if kind & DELIVERED:
        return MessageStatus.DELIVERED
    if kind & UNDELIVERED:
        return MessageStatus.UNDELIVERED
    if kind & SMSC_REJECTED:
        return MessageStatus.ERROR
    return None


def _time(value: str) -> datetime | None:
    return datetime.fromtimestamp(int(value), timezone.utc) if value.isdigit() else None
