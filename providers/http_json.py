"""Any HTTP API that takes a message as JSON (or a form) and answers in JSON, configured rather than coded.

The body template is JSON with placeholders such as {{text}}: a plain substitution, never an evaluation. A
placeholder outside a JSON string becomes a whole JSON value ("…" for text, a number for {{parts}}); inside a string
it becomes the value's escaped characters ("Order {{id}}"). Values are substituted once, so text that looks like
JSON or like a placeholder stays text. Answers and delivery reports are read with dotted paths (`messages[0].id`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import httpx

from domain.channels import STEP_FIELDS, Channel
from domain.providers import (
    DeliveryReport,
    OutgoingMessage,
    ReportSink,
    SendFailed,
    SendResult,
    SettingField,
    WebhookRejected,
    WebhookRequest,
    webhook_url,
)
from domain.statuses import MessageStatus

from .http import TIMEOUT, HttpProvider

FIELDS = ('id', 'recipient', 'text', 'sender', 'subject', 'parts', 'channel', 'webhook_url')
PARAMS = frozenset(f.key for fields in STEP_FIELDS.values() for f in fields)
PLACEHOLDER = re.compile(r'\{\{\s*([^{}]*?)\s*\}\}')
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
PATH_STEP = re.compile(r'([^.\[\]]+)|\[(\d+)\]')
REPORT_STATUSES = (MessageStatus.PENDING, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.UNDELIVERED,
                   MessageStatus.ERROR, MessageStatus.EXPIRED)
SECRET_HEADER, HMAC_SHA256 = 'secret_header', 'hmac_sha256'
DEFAULT_TEMPLATE = ('{"to": {{recipient}}, "from": {{sender}}, "text": {{text}}, "reference": {{id}}, '
                    '"callback_url": {{webhook_url}}}')
PATHS = ('id_path', 'ok_path', 'error_path', 'report_list_path', 'report_id_path', 'report_status_path',
         'report_description_path')
SAMPLE = OutgoingMessage(id='00000000-0000-0000-0000-000000000000', channel=Channel.SMS, recipient='+10000000000',
                         text='"}\\{{x}}', sender='s', subject='s', params={key: 'v' for key in PARAMS})


class HttpJsonProvider(HttpProvider):
    name: ClassVar[str] = 'http-json'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS, Channel.VIBER, Channel.WHATSAPP,
                                                        Channel.TELEGRAM})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('url', 'Address', required=True, help='Where each message is sent, e.g. https://api.example.com/sms.'),
        SettingField('method', 'Method', 'choice', default='POST', choices=('POST', 'PUT', 'GET'),
                     help='GET sends the template\'s fields as query parameters.'),
        SettingField('content_type', 'Body format', 'choice', default='json', choices=('json', 'form'),
                     help='form: the template must be one object of plain values, sent form-encoded.'),
        SettingField('headers', 'Headers', 'multiline', default='', help='One "Name: value" per line.'),
        SettingField('auth_header_name', 'Credential header', default='Authorization'),
        SettingField('auth_header', 'Credential', 'secret', default='',
                     help='The credential header\'s value, e.g. "Bearer …" (kept secret).'),
        SettingField('body_template', 'Body template', 'multiline', default=DEFAULT_TEMPLATE,
                     help='JSON with placeholders: {{id}} {{recipient}} {{text}} {{sender}} {{subject}} {{parts}} '
                          '{{channel}} {{webhook_url}} {{params.<step field>}}, e.g. {{params.imageUrl}}.'),
        SettingField('id_path', 'Message id in the answer', default='',
                     help='Path such as messages[0].id. Empty: Herald\'s message id (send it with {{id}}).'),
        SettingField('ok_path', 'Success field', default='',
                     help='Path to a field a successful answer must have, e.g. status.'),
        SettingField('ok_value', 'Success value', default='', help='What the success field must equal, e.g. ok.'),
        SettingField('error_path', 'Error text in the answer', default='', help='Path such as error.message.'),
        SettingField('report_list_path', 'Reports in a webhook', default='',
                     help='Path to the list of reports when a webhook carries many (empty: the body is one '
                          'report, or a list of them).'),
        SettingField('report_id_path', 'Report: message id', default='', help='Path in a report, e.g. id.'),
        SettingField('report_status_path', 'Report: status', default='', help='Path in a report, e.g. status.'),
        SettingField('report_description_path', 'Report: description', default=''),
        SettingField('status_map', 'Status mapping', 'multiline', default='',
                     help='One "provider value = STATUS" per line (DELIVERED, READ, UNDELIVERED, ERROR, PENDING, '
                          'EXPIRED); other values change nothing.'),
        SettingField('webhook_auth', 'Webhook check', 'choice', default=SECRET_HEADER,
                     choices=(SECRET_HEADER, HMAC_SHA256),
                     help='secret_header: the header carries the secret; hmac_sha256: it carries the hex '
                          'HMAC-SHA256 of the body keyed with the secret.'),
        SettingField('webhook_header', 'Webhook header', default='X-Webhook-Signature'),
        SettingField('webhook_secret', 'Webhook secret', 'secret', default=''),
        TIMEOUT,
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        s = settings
        errors = super().check_settings(settings)
        for key, parse in (('headers', _headers), ('status_map', _status_map)):
            try:
                parse(s[key])
            except ValueError as error:
                errors[key] = str(error)
        for name in ('auth_header_name', 'webhook_header'):
            if not HEADER_NAME.fullmatch(s[name]):
                errors[name] = 'not a valid header name'
        try:
            _check_template(s['body_template'], flat=s['method'] == 'GET' or s['content_type'] == 'form')
        except ValueError as error:
            errors['body_template'] = str(error)
        for key in PATHS:
            try:
                parse_path(s[key])
            except ValueError as error:
                errors[key] = str(error)
        if bool(s['ok_value']) != bool(s['ok_path']):
            errors['ok_value' if s['ok_path'] else 'ok_path'] = 'the success field and value go together'
        if bool(s['report_id_path']) != bool(s['report_status_path']):
            errors['report_status_path' if s['report_id_path'] else 'report_id_path'] = \
                'reports need both a message id path and a status path'
        if s['report_id_path'] and not s['webhook_secret']:
            errors['webhook_secret'] = 'required to verify delivery reports'
        if s['report_id_path'] and not s['status_map'].strip():
            errors['status_map'] = 'required to read delivery reports'
        return errors

    def __init__(self, route_name: str, settings: Mapping[str, Any], report_sink: ReportSink | None) -> None:
        super().__init__(route_name, settings, report_sink)
        s = self.settings
        self._headers = _headers(s['headers'])
        if s['auth_header']:
            self._headers[s['auth_header_name']] = s['auth_header']
        self._statuses = _status_map(s['status_map'])
        self._paths = {key: parse_path(s[key]) for key in PATHS}

    def request(self, message: OutgoingMessage) -> httpx.Request:
        s = self.settings
        document = json.loads(render(s['body_template'], _values(message, webhook_url(self.name, self.route_name))))
        if s['method'] == 'GET':
            return self.client.build_request('GET', s['url'], params=_flat(document), headers=self._headers)
        if s['content_type'] == 'form':
            content, kind = urlencode(_flat(document)).encode(), 'application/x-www-form-urlencoded'
        else:
            content, kind = json.dumps(document, ensure_ascii=False).encode(), 'application/json'
        headers = {'Content-Type': kind, 'Accept': 'application/json', **self._headers}
        return self.client.build_request(s['method'], s['url'], content=content, headers=headers)

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        paths = self._paths
        if not (paths['id_path'] or paths['ok_path']):
            return SendResult(message.id, True, message.id)
        answer = response.json()
        if paths['ok_path'] and _text(_lookup(answer, paths['ok_path'], None)) != self.settings['ok_value']:
            reason = self._error_text(answer) or f'the answer is not a success: {response.text[:300]}'
            raise SendFailed(self._clean(reason))
        if not paths['id_path']:
            return SendResult(message.id, True, message.id)
        provider_id = _text(resolve(answer, paths['id_path']))
        if not provider_id:
            raise ValueError('empty message id')
        return SendResult(message.id, True, provider_id)

    def refusal(self, response: httpx.Response) -> str:
        try:
            reason = self._error_text(response.json())
        except ValueError:
            reason = ''
        text = f'HTTP {response.status_code}: {reason}' if reason else super().refusal(response)
        return self._clean(text)

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        self._verify(request)
        paths = self._paths
        if not paths['report_id_path']:
            raise WebhookRejected('this route reads no delivery reports (no report paths set)')
        try:
            document = _webhook_document(request)
            reports = resolve(document, paths['report_list_path']) if paths['report_list_path'] else document
            items = reports if isinstance(reports, list) else [reports]
            return [report for item in items if (report := self._report(item)) is not None]
        except (ValueError, LookupError, TypeError) as error:
            raise WebhookRejected(f'malformed delivery report: {error}') from None

    def _report(self, item: Any) -> DeliveryReport | None:
        paths = self._paths
        status = self._statuses.get(_text(resolve(item, paths['report_status_path'])))
        if status is None:
            return None
        provider_id = _text(resolve(item, paths['report_id_path']))
        if not provider_id:
            raise ValueError('a report without a message id')
        path = paths['report_description_path']
        description = _text(_lookup(item, path, '')) if path else ''
        return DeliveryReport(provider_id, status, description[:500])

    def _verify(self, request: WebhookRequest) -> None:
        secret = self.settings['webhook_secret'].encode()
        if not secret:
            raise WebhookRejected('no webhook secret is set for this route')
        given = request.header(self.settings['webhook_header']).strip()
        if self.settings['webhook_auth'] == HMAC_SHA256:
            given = given.removeprefix('sha256=').lower()
            expected = hmac.new(secret, request.body, hashlib.sha256).hexdigest()
        else:
            expected = secret.decode()
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected(f'bad or missing {self.settings["webhook_header"]}')

    def _error_text(self, answer: Any) -> str:
        return _text(_lookup(answer, self._paths['error_path'], '')) if self._paths['error_path'] else ''

    def _clean(self, text: str) -> str:
        for secret in (self.settings['auth_header'], self.settings['webhook_secret']):
            if secret:
                text = text.replace(secret, '***')
        return text


def render(template: str, values: Mapping[str, Any]) -> str:
    """The template with each placeholder replaced by its JSON-escaped value, in one pass over the template."""
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(template):
        match = PLACEHOLDER.match(template, i) if template.startswith('{{', i) else None
        if match:
            name = match.group(1)
            if name not in values:
                raise ValueError(f'unknown placeholder {{{{{name}}}}}')
            value = values[name]
            out.append(json.dumps(_text(value), ensure_ascii=False)[1:-1] if in_string
                       else json.dumps(value, ensure_ascii=False))
            i = match.end()
            continue
        char = template[i]
        if escaped:
            escaped = False
        elif char == '\\' and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
        out.append(char)
        i += 1
    return ''.join(out)


def parse_path(text: str) -> tuple[str | int, ...]:
    """`messages[0].id` → ('messages', 0, 'id'); '' → (). Raises ValueError naming what is wrong."""
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        if steps and text[position] == '.':
            position += 1
        match = PATH_STEP.match(text, position)
        if not match or match.group(1) is not None and match.group(1) != match.group(1).strip():
            raise ValueError(f'bad path {text!r} at character {position + 1}: expected name.name or name[0]')
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if text.endswith('.'):
        raise ValueError(f'bad path {text!r}: it ends with a dot')
    return tuple(steps)


def resolve(document: Any, path: tuple[str | int, ...]) -> Any:
    """The value at `path`; KeyError when there is none."""
    value = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise KeyError(f'no item [{step}]')
        elif not isinstance(value, dict) or step not in value:
            raise KeyError(f'no field {step!r}')
        value = value[step]
    return value


def _lookup(document: Any, path: tuple[str | int, ...], default: Any) -> Any:
    try:
        return resolve(document, path)
    except LookupError:
        return default


def _text(value: Any) -> str:
    """A JSON value as the text settings compare it with: true, 42, abc."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return '' if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _values(message: OutgoingMessage, report_url: str) -> dict[str, Any]:
    values = {'id': message.id, 'recipient': message.recipient, 'text': message.text, 'sender': message.sender,
              'subject': message.subject, 'parts': message.parts, 'channel': message.channel.value,
              'webhook_url': report_url}
    return values | {f'params.{key}': message.params.get(key) for key in PARAMS}


def _webhook_document(request: WebhookRequest) -> Any:
    """A report's body as JSON, or its form fields, or (a GET) its query parameters."""
    if not request.body:
        return dict(request.query)
    if request.header('content-type').startswith('application/x-www-form-urlencoded'):
        return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    return json.loads(request.body)


def _check_template(template: str, flat: bool) -> None:
    try:
        document = json.loads(render(template, _values(SAMPLE, 'https://herald.example/webhooks')))
    except json.JSONDecodeError as error:
        raise ValueError(f'not JSON once its placeholders are filled in: {error.msg} at line {error.lineno} '
                         f'column {error.colno}') from None
    if flat:
        _flat(document)


def _flat(document: Any) -> dict[str, str]:
    """A template for a form or a query: one object of plain values."""
    if not isinstance(document, dict) or any(isinstance(v, (dict, list)) for v in document.values()):
        raise ValueError('a form or GET template must be one JSON object of plain values')
    return {key: _text(value) for key, value in document.items()}


def _headers(text: str) -> dict[str, str]:
    headers = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(':')
        if not colon or not HEADER_NAME.fullmatch(name.strip()):
            raise ValueError(f'line {number}: expected "Name: value"')
        headers[name.strip()] = value.strip()
    return headers


def _status_map(text: str) -> dict[str, MessageStatus]:
    known = ', '.join(status.value for status in REPORT_STATUSES)
    mapping = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        value, equals, status = line.rpartition('=')
        if not equals or not value.strip():
            raise ValueError(f'line {number}: expected "provider value = STATUS"')
        if status.strip().upper() not in {s.value for s in REPORT_STATUSES}:
            raise ValueError(f'line {number}: unknown status {status.strip()!r} (expected one of {known})')
        mapping[value.strip()] = MessageStatus(status.strip().upper())
    return mapping

