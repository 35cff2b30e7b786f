"""Task files: the Excel workbooks of each kind of notification task, their downloadable templates, safe reading of
an upload and checking its rows. Pure (no database, no asyncio): row checking runs in worker processes
(`phones.in_workers(check_rows, rows, mapping, rules)`), so inputs and outputs are picklable."""
from __future__ import annotations

import io
import json
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import openpyxl
import python_calamine
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from . import phones, templates, xlsx
from .channels import Channel
from .enqueue import Destination, contact_field
from .errors import ValidationError
from .models import TaskKind
from .task_files_ru import RUSSIAN

MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_UNPACKED_BYTES = 400 * 1024 * 1024
MAX_RATIO = 100  # a member unpacking to more than this many times its packed size (and over RATIO_FLOOR) is a bomb
RATIO_FLOOR = 1024 * 1024
MAX_MEMBERS = 10_000
MAX_ROWS = 200_000

EMPTY = 'The file is empty.'
NO_ROWS = 'The file has no rows below the header.'
TOO_BIG = f'The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: split it into several tasks.'
LEGACY_XLS = ('This is an old Excel .xls file (or a password-protected workbook): open it in Excel and save it as '
              '“Excel Workbook (.xlsx)” without a password.')
NOT_XLSX = 'This is not an Excel .xlsx file: open it in Excel and save it as “Excel Workbook (.xlsx)”.'
DAMAGED = 'The file is damaged or not a valid .xlsx workbook.'
BOMB = 'The file unpacks to far more data than a spreadsheet holds (a “zip bomb”): it was rejected.'
XML_BOMB = 'The file contains XML declarations (DOCTYPE or ENTITY) that Excel never writes: it was rejected as unsafe.'


class FileRejected(ValidationError):
    """The upload cannot be read as a task file; the message (key 'file') says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__({'file': message})


def _too_many_rows() -> str:
    return f'The file has more than {MAX_ROWS:,} rows: split it into several tasks.'


# --- kinds and columns -------------------------------------------------------------------------------------------

LABELS: dict[TaskKind, str] = {
    TaskKind.SMS: 'SMS messages',
    TaskKind.SPONSORED: 'Sponsored messages',
    TaskKind.CHAT_START: 'Start chat sessions',
    TaskKind.WHATSAPP_CHAT_START: 'Start chat sessions in WhatsApp',
    TaskKind.UNIVERSAL: 'Universal (api format)',
    TaskKind.FULL: 'Full list of params',
}

TEMPLATE_USE: dict[TaskKind, str] = {
    TaskKind.SMS: 'none', TaskKind.SPONSORED: 'none', TaskKind.CHAT_START: 'required',
    TaskKind.WHATSAPP_CHAT_START: 'none', TaskKind.UNIVERSAL: 'required', TaskKind.FULL: 'optional',
}
VARIABLE_KINDS = frozenset(kind for kind, use in TEMPLATE_USE.items() if use != 'none')


@dataclass(frozen=True)
class Column:
    key: str
    en: str
    ru: str
    required: bool
    format: str
    example: str
    description: str


def _column(key: str, en: str, ru: str, format: str, example: str, description: str) -> Column:
    return Column(key, en, ru, False, format, example, description)


def _required(column: Column) -> Column:
    return replace(column, required=True)


_URL = 'A web address starting with http:// or https://'
_ID = 'Text, up to 200 characters'
PHONE = _column('phone', 'Phone', 'Телефон',
                'With the country code, e.g. +79001234567; a number without “+” is read in the default country '
                '(8 912 345-67-89 is Russian); spaces, brackets and dashes are fine',
                '+79001234567', 'The recipient’s mobile number.')
EMAIL = _column('email', 'Email', 'Электронная почта', 'An email address', 'client@example.com',
                'The recipient’s email address (for the email channel).')
EXTERNAL_ID = _column('external_id', 'External ID', 'Внешний ID', _ID, 'order-1001',
                      'Your own id of the message: shown in the history and sent back in status callbacks.')
CLIENT_ID = _column('client_id', 'Client ID', 'ID клиента', _ID, 'client-42', 'Your id of the recipient.')
MESSENGER_USER_ID = _column('messenger_user_id', 'Messenger user ID', 'ID пользователя в мессенджере', _ID,
                            '123456789', 'The recipient’s chat id in the messenger (Telegram).')
CALLBACK_URL = _column('callback_url', 'Callback URL', 'Адрес для статусов', _URL, 'https://example.com/herald',
                       'Herald posts every status change of the message to this address.')
CALLBACK_DATA = _column('callback_data', 'Callback data', 'Данные для статусов', 'Any text, up to 4000 characters',
                        'order-1001', 'Sent back as is with every status callback.')
GROUP_ID = _column('group_id', 'Group ID', 'ID группы', 'Text, up to 64 characters', 'spring-sale',
                   'Groups messages for the history filter and for cancelling them together.')
FLOW_ID = _column('flow_id', 'Flow ID', 'ID цепочки', 'Text, up to 64 characters', 'welcome-flow',
                  'Your id of a series of messages.')
BULK_ID = _column('bulk_id', 'Bulk ID', 'ID пакета', 'Text, up to 64 characters', 'bulk-2025-03',
                  'Your id of a batch of messages.')
START_DATE = _column('start_date', 'Start date', 'Дата начала', 'YYYY-MM-DD, DD.MM.YYYY or an Excel date',
                     '2030-03-01', 'Do not send before this day (with the start time, in the task’s time zone).')
START_TIME = _column('start_time', 'Start time', 'Время начала', 'HH-MM-SS, HH:MM:SS or HH:MM', '09:00:00',
                     'Do not send before this time of the start date.')
ALLOWED_TIME_RANGES = _column('allowed_time_ranges', 'Allowed time ranges', 'Разрешённое время отправки',
                              'HH:MM-HH:MM, several separated by commas', '09:00-13:00, 14:00-18:00',
                              'Send only within these hours; replaces the template’s or task’s ranges for this row.')
VALIDITY_PERIOD = _column('validity_period', 'Validity period', 'Срок действия (минуты)',
                          f'Whole minutes from 1 to {templates.MAX_VALIDITY_MINUTES}', '60',
                          'A message not delivered in this time expires (the next channel takes over).')
REQUIRED = _column('required', 'Required', 'Обязательно', 'true or false', 'false',
                   'true: the row’s channels are each sent whatever happened to the ones before them, not only '
                   'as fallbacks.')


SMS_SENDER = _column('sender', 'Sender', 'Имя отправителя',
                     'Up to 11 Latin letters, digits, spaces or . - _, or up to 15 digits', 'MyShop',
                     'An approved SMS sender name (the Sender names page).')
SMS_TEXT = _column('text', 'Text', 'Текст сообщения', 'Up to 4000 characters; a long text goes as several parts',
                   'Your order 1001 is ready for pickup.', 'The SMS text.')
VIBER_SENDER = _column('sender', 'Sender', 'Имя отправителя', 'Up to 64 characters', 'MyShop',
                       'An approved Viber sender name (the Sender names page).')
VIBER_TEXT = _column('text', 'Text', 'Текст сообщения', 'Up to 1000 characters', '20% off everything this week!',
                     'The Viber promotional message.')
IMAGE_URL = _column('image_url', 'Image URL', 'Ссылка на изображение', _URL, 'https://example.com/sale.png',
                    'A picture shown in the message.')
BUTTON_TEXT = _column('button_text', 'Button text', 'Текст кнопки', 'Up to 30 characters', 'Shop now',
                      'The button’s caption; give the button URL too.')
BUTTON_URL = _column('button_url', 'Button URL', 'Ссылка кнопки', _URL, 'https://example.com/sale',
                     'Where the button leads; give the button text too.')
TEMPLATE_NAME = _column('template_name', 'WhatsApp template name', 'Название шаблона WhatsApp',
                        'As approved in WhatsApp Business, up to 512 characters', 'order_ready',
                        'The WhatsApp message template that opens the chat.')
LANGUAGE = _column('language', 'Language', 'Язык', 'A language code, e.g. en or ru', 'en',
                   'The language of the WhatsApp template.')
TEMPLATE_PARAMETERS = _column('template_parameters', 'Template parameters', 'Параметры шаблона',
                              'Values separated by |', 'Anna|1001',
                              'The values of the WhatsApp template’s parameters {{1}}, {{2}}, … in order.')
MEDIA_URL = _column('media_url', 'Media URL', 'Ссылка на медиафайл', _URL, 'https://example.com/receipt.pdf',
                    'A picture or document for the template’s header.')

COLUMNS: dict[TaskKind, tuple[Column, ...]] = {
    TaskKind.SMS: (_required(PHONE), _required(SMS_SENDER), _required(SMS_TEXT), EXTERNAL_ID),
    TaskKind.SPONSORED: (_required(PHONE), _required(VIBER_SENDER), _required(VIBER_TEXT), IMAGE_URL, BUTTON_TEXT,
                         BUTTON_URL, EXTERNAL_ID),
    TaskKind.CHAT_START: (_required(PHONE), MESSENGER_USER_ID, EXTERNAL_ID),
    TaskKind.WHATSAPP_CHAT_START: (_required(PHONE), _required(TEMPLATE_NAME), LANGUAGE, TEMPLATE_PARAMETERS,
                                   MEDIA_URL, EXTERNAL_ID),
    TaskKind.UNIVERSAL: (PHONE, EMAIL, EXTERNAL_ID, CLIENT_ID, MESSENGER_USER_ID, CALLBACK_URL, CALLBACK_DATA,
                         GROUP_ID),
    TaskKind.FULL: (
        PHONE, EMAIL, EXTERNAL_ID, CLIENT_ID, MESSENGER_USER_ID, GROUP_ID, FLOW_ID, BULK_ID, CALLBACK_URL,
        replace(CALLBACK_DATA, format='JSON text', example='{"order": 1001}'), START_DATE, START_TIME,
        ALLOWED_TIME_RANGES, VALIDITY_PERIOD, REQUIRED,
        _column('sms_sender', 'SMS sender', 'Отправитель SMS', SMS_SENDER.format, 'MyShop', SMS_SENDER.description),
        _column('sms_text', 'SMS text', 'Текст SMS', 'Up to 4000 characters; {{name}} inserts a variable',
                'Hello, {{name}}! Your order 1001 is ready.', 'Filled: the row is sent by SMS.'),
        _column('viber_sender', 'Viber sender', 'Отправитель Viber', VIBER_SENDER.format, 'MyShop',
                VIBER_SENDER.description),
        _column('viber_text', 'Viber text', 'Текст Viber', 'Up to 1000 characters; {{name}} inserts a variable',
                'Hello, {{name}}! 20% off this week.', 'Filled: the row is sent through Viber.'),
        _column('viber_image_url', 'Viber image URL', 'Изображение Viber', _URL, '', IMAGE_URL.description),
        _column('viber_button_text', 'Viber button text', 'Текст кнопки Viber', 'Up to 30 characters', '',
                BUTTON_TEXT.description),
        _column('viber_button_url', 'Viber button URL', 'Ссылка кнопки Viber', _URL, '', BUTTON_URL.description),
        _column('whatsapp_template_name', 'WhatsApp template name', 'Название шаблона WhatsApp',
                TEMPLATE_NAME.format, 'order_ready', 'Filled: the row is sent through WhatsApp with this template.'),
        _column('whatsapp_language', 'WhatsApp language', 'Язык WhatsApp', LANGUAGE.format, 'en',
                LANGUAGE.description),
        _column('whatsapp_text', 'WhatsApp text', 'Текст WhatsApp', 'Up to 4096 characters', '',
                'The text of a WhatsApp message inside an open chat.'),
        _column('telegram_text', 'Telegram text', 'Текст Telegram', 'Up to 4096 characters; {{name}} inserts a '
                'variable', 'Hello, {{name}}!', 'Filled: the row is sent through Telegram (needs the messenger '
                'user ID).'),
        _column('email_from', 'Email from', 'Email отправителя', 'An email address', 'shop@example.com',
                'The sender address of the email.'),
        _column('email_from_name', 'Email from name', 'Имя отправителя email', 'Up to 200 characters', 'My Shop',
                'The sender name shown by mail programs.'),
        _column('email_subject', 'Email subject', 'Тема письма', 'Up to 998 characters', 'Your order 1001',
                'The subject of the email.'),
        _column('email_text', 'Email text', 'Текст письма', 'Text; {{name}} inserts a variable',
                'Hello, {{name}}! Your order 1001 is ready.', 'Filled: the row is sent by email.'),
    ),
}

# Columns of the twin's full list that Herald accepts and ignores.
IGNORED_COLUMNS: tuple[Column, ...] = (
    _column('attachments', 'Attachments', 'Вложения', '', '', ''),
    _column('bot_id', 'Bot ID', 'ID бота', '', '', ''),
    _column('push_registration_id', 'Push registration ID', 'ID push-регистрации', '', '', ''),
)

EXAMPLE_VARIABLE = ('name', 'Anna')  # the variable column the downloadable templates of VARIABLE_KINDS show

# The channel step each kind's rows carry, as (channel, {step field: column key}).
_FIXED_STEPS: dict[TaskKind, tuple[Channel, dict[str, str]]] = {
    TaskKind.SMS: (Channel.SMS, {'from': 'sender', 'text': 'text'}),
    TaskKind.SPONSORED: (Channel.VIBER, {'from': 'sender', 'text': 'text', 'imageUrl': 'image_url',
                                         'buttonText': 'button_text', 'buttonUrl': 'button_url'}),
    TaskKind.WHATSAPP_CHAT_START: (Channel.WHATSAPP, {'templateName': 'template_name', 'language': 'language',
                                                      'mediaUrl': 'media_url'}),
}
# The full list's channels in cascade order: (channel, the fields whose value turns it on, {step field: column key}).
_FULL_CHANNELS: tuple[tuple[Channel, tuple[str, ...], dict[str, str]], ...] = (
    (Channel.VIBER, ('text',), {'from': 'viber_sender', 'text': 'viber_text', 'imageUrl': 'viber_image_url',
                                'buttonText': 'viber_button_text', 'buttonUrl': 'viber_button_url'}),
    (Channel.WHATSAPP, ('templateName', 'text'), {'templateName': 'whatsapp_template_name',
                                                  'language': 'whatsapp_language', 'text': 'whatsapp_text'}),
    (Channel.TELEGRAM, ('text',), {'text': 'telegram_text'}),
    (Channel.SMS, ('text',), {'from': 'sms_sender', 'text': 'sms_text'}),
    (Channel.EMAIL, ('text',), {'fromEmail': 'email_from', 'fromName': 'email_from_name',
                                'subject': 'email_subject', 'text': 'email_text'}),
)
_REQUIRED_STEP_FIELDS = {Channel.VIBER: ('from', 'text'), Channel.WHATSAPP: ('templateName',),
                         Channel.TELEGRAM: ('text',), Channel.SMS: ('from', 'text'),
                         Channel.EMAIL: ('fromEmail', 'subject', 'text')}
_MAX_LENGTHS = {'external_id': 200, 'client_id': 200, 'messenger_user_id': 200, 'group_id': 64, 'flow_id': 64,
                'bulk_id': 64, 'callback_url': 2000, 'callback_data': 4000}


# --- header matching ---------------------------------------------------------------------------------------------

def normalize_header(header: object) -> str:
    """Case, surrounding spaces, a trailing '*', '_' and '-' (as spaces) and 'ё' do not matter."""
    text = str(header).strip().rstrip('*').lower().replace('ё', 'е').replace('_', ' ').replace('-', ' ')
    return ' '.join(text.split())


@cache
def _header_keys(kind: TaskKind) -> dict[str, str]:
    """Normalized header → column key, for the English and Russian headers and the keys of a kind's columns."""
    columns = COLUMNS[kind] + (IGNORED_COLUMNS if kind is TaskKind.FULL else ())
    return {normalize_header(name): column.key for column in columns for name in (column.key, column.en, column.ru)}


# --- downloadable templates --------------------------------------------------------------------------------------

_SHEET2 = {
    'en': ('Columns', ('Column', 'Required', 'Format', 'Example', 'Description'), ('Yes', 'No'), 'Recipients'),
    'ru': ('Колонки', ('Колонка', 'Обязательная', 'Формат', 'Пример', 'Описание'), ('Да', 'Нет'), 'Получатели'),
}
_TEMPLATE_NOTES = {
    'required': 'Choose a Herald template in the task dialog: it gives the channels and their texts.',
    'optional': ('A row whose channel columns are all empty is sent with the template chosen in the task dialog; '
                 'the filled channels of a row are tried in the order Viber, WhatsApp, Telegram, SMS, email.'),
    'none': '',
}
_VARIABLE_NOTE = ('Any other column is a variable {{name}} of the template: its header is the variable’s name, '
                  'e.g. a column “name” fills {{name}}.')


def template_filename(kind: TaskKind, language: str = 'en') -> str:
    return f'herald-task-{TaskKind(kind).value.replace("_", "-")}-{_language(language)}.xlsx'


def _language(language: str) -> str:
    if language not in _SHEET2:
        raise ValueError(f'No task templates in “{language}”: use en or ru.')
    return language


def template_workbook(kind: TaskKind, language: str = 'en') -> bytes:
    """A workbook to fill in: the columns of `kind` with an example row, and a sheet explaining every column."""
    kind, language = TaskKind(kind), _language(language)
    columns_title, headings, yes_no, sheet_title = _SHEET2[language]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = sheet_title
    columns = COLUMNS[kind]
    headers = [_header(column, language) for column in columns]
    examples = [column.example for column in columns]
    if kind in VARIABLE_KINDS:
        headers.append(EXAMPLE_VARIABLE[0])
        examples.append(EXAMPLE_VARIABLE[1])
    _write_row(sheet, 1, headers, bold=True)
    _write_row(sheet, 2, examples)
    for i, column in enumerate(columns, start=1):
        if column.key == 'phone':
            sheet.column_dimensions[get_column_letter(i)].number_format = '@'
            sheet.cell(2, i).number_format = '@'
    _fit_widths(sheet, [headers, examples])
    sheet.freeze_panes = 'A2'
    _write_explanations(book.create_sheet(columns_title), kind, language, headings, yes_no)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _header(column: Column, language: str) -> str:
    name = column.ru if language == 'ru' else column.en
    return f'{name}*' if column.required else name


def _write_explanations(sheet: Any, kind: TaskKind, language: str, headings: tuple[str, ...],
                        yes_no: tuple[str, str]) -> None:
    rows = [list(headings)]
    rows += [[_header(column, language), yes_no[0] if column.required else yes_no[1], _said(column.format, language),
              column.example, _said(column.description, language)] for column in COLUMNS[kind]]
    notes = [_TEMPLATE_NOTES[TEMPLATE_USE[kind]], _VARIABLE_NOTE if kind in VARIABLE_KINDS else '']
    rows += [[_said(note, language)] for note in notes if note]
    for number, values in enumerate(rows, start=1):
        _write_row(sheet, number, values, bold=number == 1)
    _fit_widths(sheet, rows)
    sheet.freeze_panes = 'A2'


def explanations(kind: TaskKind) -> list[str]:
    """Every English text the explanation sheet of `kind` shows (each has a Russian one in task_files_ru)."""
    notes = [_TEMPLATE_NOTES[TEMPLATE_USE[kind]], _VARIABLE_NOTE if kind in VARIABLE_KINDS else '']
    return [text for column in COLUMNS[kind] for text in (column.format, column.description)] + \
        [note for note in notes if note]


def _said(text: str, language: str) -> str:
    return RUSSIAN[text] if language == 'ru' else text


def _write_row(sheet: Any, number: int, values: list[str], bold: bool = False) -> None:
    for i, value in enumerate(values, start=1):
        cell = sheet.cell(number, i, value)
        cell.data_type = 's'  # never a formula, whatever the text starts with
        if bold:
            cell.font = Font(bold=True)


def _fit_widths(sheet: Any, rows: list[list[str]]) -> None:
    widths: dict[int, int] = {}
    for values in rows:
        for i, value in enumerate(values, start=1):
            widths[i] = max(widths.get(i, 8), min(len(str(value)) + 2, 60))
    for i, width in widths.items():
        sheet.column_dimensions[get_column_letter(i)].width = width


# --- safe reading ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[tuple[int, list[object]]]  # (row number as Excel shows it, cells); fully empty rows left out


def read_table(path: Path) -> Table:
    """The first sheet of an uploaded workbook; FileRejected, before anything is parsed, for what is not a sound,
    safe .xlsx file of at most MAX_ROWS rows without formulas."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise FileRejected(EMPTY)
    if size > MAX_FILE_BYTES:
        raise FileRejected(TOO_BIG)
    with path.open('rb') as file:
        _check_magic(file.read(8))
        file.seek(0)
        _inspect_zip(file)
    return _table(_first_sheet_rows(path))


def _check_magic(head: bytes) -> None:
    if head.startswith(b'\xd0\xcf\x11\xe0'):
        raise FileRejected(LEGACY_XLS)
    if not head.startswith((b'PK\x03\x04', b'PK\x05\x06')):
        raise FileRejected(NOT_XLSX)


def _inspect_zip(file: io.BufferedReader) -> None:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as error:
        raise FileRejected(DAMAGED) from error
    with archive:
        members = archive.infolist()
        _check_directory(members)
        scan = _ZipScan(file)
        by_name = {member.filename: member for member in members}
        first = [by_name[name] for name in ('xl/workbook.xml', 'xl/_rels/workbook.xml.rels') if name in by_name]
        for member in first:
            scan.member(member, worksheet=False)
        first_sheet = _first_sheet_path(archive)
        for member in members:
            if member not in first and _is_xml(member.filename):
                scan.member(member, worksheet='/worksheets/' in member.filename or member.filename == first_sheet)
    if scan.rows.get(first_sheet, max(scan.rows.values(), default=0)) > MAX_ROWS + 1:
        raise FileRejected(_too_many_rows())


def _check_directory(members: list[zipfile.ZipInfo]) -> None:
    """What the zip's directory says: a workbook inside, sizes a spreadsheet can have (checked again as it unpacks)."""
    if not any(member.filename == 'xl/workbook.xml' for member in members):
        raise FileRejected('This is a zip archive, not an Excel .xlsx workbook: save the file from Excel as '
                           '“Excel Workbook (.xlsx)”.')
    if len(members) > MAX_MEMBERS:
        raise FileRejected(DAMAGED)
    if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
        raise FileRejected(BOMB)
    if any(member.file_size > RATIO_FLOOR and member.file_size > MAX_RATIO * member.compress_size
           for member in members):
        raise FileRejected(BOMB)


def _is_xml(name: str) -> bool:
    return name.lower().endswith(('.xml', '.rels', '.vml'))


def _first_sheet_path(archive: zipfile.ZipFile) -> str | None:
    """The member holding the workbook's first sheet (the one read), or None when the workbook does not say."""
    try:
        book = ElementTree.fromstring(archive.read('xl/workbook.xml'))
        relations = ElementTree.fromstring(archive.read('xl/_rels/workbook.xml.rels'))
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile, zlib.error):
        return None
    sheet = next((element for element in book.iter() if element.tag.rsplit('}', 1)[-1] == 'sheet'), None)
    relation_id = next((value for name, value in (sheet.attrib.items() if sheet is not None else ())
                        if name.rsplit('}', 1)[-1] == 'id'), None)
    target = next((element.get('Target') for element in relations.iter() if element.get('Id') == relation_id), None)
    if not target:
        return None
    return target.lstrip('/') if target.startswith('/') else f'xl/{target}'


_CHUNK = 1024 * 1024
_TAIL = 4096  # bytes kept from the previous chunk: patterns across chunks, and the cell a formula is in
_LOCAL_HEADER_SIZE = 30
_UNSAFE_XML = tuple(marker.encode(encoding) for marker in ('<!DOCTYPE', '<!ENTITY')
                    for encoding in ('utf-8', 'utf-16-le', 'utf-16-be'))
_ROW_TAGS = (b'<row ', b'<row>', b':row ', b':row>')
_FORMULA = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?f[\s>/]')
_CELL_REF = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br="([A-Za-z]{1,3}[0-9]{1,7})"')


class _ZipScan:
    """Unpacks members itself from their local headers, counting every byte: the directory's sizes are not trusted."""

    def __init__(self, file: io.BufferedReader) -> None:
        self.file = file
        self.total = 0
        self.rows: dict[str, int] = {}

    def member(self, info: zipfile.ZipInfo, worksheet: bool) -> None:
        tail, rows = b'', 0
        for chunk in self._unpack(info):
            buffer = tail + chunk
            start = max(len(tail) - 32, 0)
            if any(buffer.find(marker, start) >= 0 for marker in _UNSAFE_XML):
                raise FileRejected(XML_BOMB)
            if worksheet:
                rows += sum(buffer.count(tag, max(len(tail) - len(tag) + 1, 0)) for tag in _ROW_TAGS)
                _check_formulas(buffer, max(len(tail) - 64, 0))
            tail = buffer[-_TAIL:]
        if worksheet:
            self.rows[info.filename] = rows

    def _unpack(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        if info.flag_bits & 1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileRejected(DAMAGED)
        self.file.seek(info.header_offset)
        header = self.file.read(_LOCAL_HEADER_SIZE)
        if len(header) < _LOCAL_HEADER_SIZE or not header.startswith(b'PK\x03\x04'):
            raise FileRejected(DAMAGED)
        name_length, extra_length = struct.unpack('<HH', header[26:30])
        self.file.seek(info.header_offset + _LOCAL_HEADER_SIZE + name_length + extra_length)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
        produced, left = 0, info.compress_size
        try:
            while left > 0:
                raw = self.file.read(min(left, _CHUNK))
                if not raw:
                    raise FileRejected(DAMAGED)
                left -= len(raw)
                while raw:
                    out, raw = (inflater.decompress(raw, _CHUNK), inflater.unconsumed_tail) if inflater else (raw, b'')
                    produced = self._count(info, produced, len(out))
                    yield out
            while inflater and not inflater.eof and (out := inflater.decompress(b'', _CHUNK)):
                produced = self._count(info, produced, len(out))
                yield out
        except zlib.error as error:
            raise FileRejected(DAMAGED) from error
        if inflater and not inflater.eof:
            raise FileRejected(DAMAGED)

    def _count(self, info: zipfile.ZipInfo, produced: int, size: int) -> int:
        produced += size
        self.total += size
        if (self.total > MAX_UNPACKED_BYTES or produced > info.file_size
                or (produced > RATIO_FLOOR and produced > MAX_RATIO * info.compress_size)):
            raise FileRejected(BOMB)
        return produced


def _check_formulas(buffer: bytes, start: int) -> None:
    if buffer.find(b'<f', start) < 0 and buffer.find(b':f', start) < 0:
        return
    found = _FORMULA.search(buffer, start)
    if found is None:
        return
    cells = _CELL_REF.findall(buffer, 0, found.start())
    where = f' (first in cell {cells[-1].decode().upper()})' if cells else ''
    raise FileRejected(f'The file contains formulas{where}: paste the values only.')


def _first_sheet_rows(path: Path) -> list[list[object]]:
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        try:
            return workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
        finally:
            workbook.close()
    except Exception as error:  # calamine's errors are many types; any of them means an unreadable workbook
        raise FileRejected(DAMAGED) from error


def _table(rows: list[list[object]]) -> Table:
    filled = [(i, row) for i, row in enumerate(rows, 1) if row.count('') + row.count(None) < len(row)]
    if len(filled) < 2:
        raise FileRejected(NO_ROWS)
    if len(filled) - 1 > MAX_ROWS:
        raise FileRejected(_too_many_rows())
    headers = [str(_cell(value)).strip() if value is not None else '' for value in filled[0][1]]
    return Table(headers, [(number, row if _plain(row) else [_cell(value) for value in row])
                           for number, row in filled[1:]])


def _plain(row: list[object]) -> bool:
    """Whether a row has nothing for `_cell` to change (most rows of text and phone numbers stored as text)."""
    return None not in row and not any(value.__class__ is float for value in row)


def _cell(value: object) -> object:
    """Whole numbers from number cells (79001234567.0) as their digits; other values as calamine gives them."""
    if value.__class__ is float and value.is_integer():
        return str(int(value))
    return '' if value is None else value


# --- headers -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rules:
    """What a task's rows are checked against (picklable: it goes to the worker processes)."""
    kind: TaskKind
    template_steps: list[dict[str, Any]] | None = None  # the chosen template's cleaned steps
    approved_senders: dict[str, frozenset[str]] = field(default_factory=dict)  # channel value → approved names
    default_region: str = 'RU'
    time_zone: str = 'UTC'  # the zone of the rows' start date and time

    @property
    def uses_template(self) -> bool:
        return TEMPLATE_USE[self.kind] != 'none' and self.template_steps is not None


@dataclass(frozen=True)
class Mapping:
    columns: dict[str, int]  # column key → index
    variables: dict[str, int]  # variable name → index
    ignored: tuple[str, ...] = ()  # headers of columns Herald accepts but does not act on
    unknown: tuple[str, ...] = ()  # headers that are neither columns nor variables (kinds without variables)
    headers: tuple[str, ...] = ()  # the file's headers, by index


def map_headers(headers: list[str], rules: Rules) -> Mapping:
    """Which column of the file is which; FileRejected for duplicates and missing required or variable columns."""
    kind = rules.kind
    if TEMPLATE_USE[kind] == 'required' and rules.template_steps is None:
        raise ValidationError({'template': f'Choose a template: “{LABELS[kind]}” sends through one.'})
    keys, columns, variables, ignored, unknown, seen = _header_keys(kind), {}, {}, [], [], {}
    ignored_keys = {column.key for column in IGNORED_COLUMNS}
    for index, header in enumerate(headers):
        normalized = normalize_header(header)
        if not normalized:
            continue
        key = keys.get(normalized)
        if (key or normalized) in seen:
            raise FileRejected(f'The column “{header}” appears twice (columns '
                               f'{get_column_letter(seen[key or normalized] + 1)} and {get_column_letter(index + 1)}).')
        seen[key or normalized] = index
        if key in ignored_keys:
            ignored.append(header)
        elif key:
            columns[key] = index
        elif kind in VARIABLE_KINDS:
            variables[str(header).strip().rstrip('*').strip()] = index
        else:
            unknown.append(header)
    _check_present(kind, columns)
    variables = _with_template_variables(variables, columns, rules)
    return Mapping(columns, variables, tuple(ignored), tuple(unknown), tuple(str(h) for h in headers))


def _check_present(kind: TaskKind, columns: dict[str, int]) -> None:
    needed = [column for column in COLUMNS[kind] if column.required]
    if kind is TaskKind.FULL:
        by_key = {column.key: column for column in COLUMNS[kind]}
        for channel, triggers, fields in _FULL_CHANNELS:
            if any(fields[name] in columns for name in triggers):
                needed += [by_key[fields[name]] for name in _REQUIRED_STEP_FIELDS[channel]]
    missing = list(dict.fromkeys(column.en for column in needed if column.key not in columns))
    if missing:
        raise FileRejected(f'Missing columns: {", ".join(missing)}.')


def _with_template_variables(variables: dict[str, int], columns: dict[str, int], rules: Rules) -> dict[str, int]:
    """The variable columns, each template variable under the template's spelling of its name; FileRejected when
    one has no column (for the full list only if no row can carry its own channels)."""
    if not rules.uses_template:
        return variables
    by_name = {normalize_header(name): name for name in variables}
    renamed, missing = dict(variables), []
    for name in templates.template_variables(rules.template_steps):
        header = by_name.get(normalize_header(name))
        if header is None:
            missing.append(name)
        elif header != name:
            renamed[name] = renamed.pop(header)
    own_channels = any(column in columns for _, _, fields in _FULL_CHANNELS for column in fields.values())
    if missing and not (rules.kind is TaskKind.FULL and own_channels):
        raise FileRejected(f'Missing columns for the template’s variables: {", ".join(missing)}.')
    return renamed


# --- rows --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowProblem:
    row: int
    column: str
    reason: str


@dataclass(frozen=True)
class CheckedRow:
    row: int
    destination: Destination
    contacts: phones.Contacts  # (E.164 phone or None, its country, normalized email or None)
    bulk_id: str | None = None  # the full list's bulk id: not stored (a task's rows share the import's bulk id)


def check_rows(rows: list[tuple[int, list[object]]], mapping: Mapping, rules: Rules) -> list[CheckedRow | RowProblem]:
    """One result per row, in order (module-level, for the worker processes)."""
    checker = _Checker(mapping, rules)
    return [checker.check(number, cells) for number, cells in rows]


class _Problem(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


_CHANNELS = {channel.value: channel for channel in Channel}
_TRUE = frozenset({'true', 'yes', 'y', '1', 'да', 'истина'})
_FALSE = frozenset({'false', 'no', 'n', '0', 'нет', 'ложь', ''})
_TIME = re.compile(r'(\d{1,2})[:.\-](\d{2})(?:[:.\-](\d{2}))?')
_DATE_DMY = re.compile(r'(\d{1,2})\.(\d{1,2})\.(\d{4})')
_RANGE = re.compile(r'(\d{1,2}):(\d{2})(?::00)?\s*[-–—]\s*(\d{1,2}):(\d{2})(?::00)?')
_RANGE_SEPARATORS = re.compile(r'[,;\n]')


def _text(value: object) -> str:
    if value.__class__ is str:
        return value.strip()
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value).strip()


class _Checker:
    """Everything about a file that is the same for each row, worked out once per chunk of rows."""

    def __init__(self, mapping: Mapping, rules: Rules) -> None:
        self.kind, self.region = rules.kind, rules.default_region
        self.zone = timezone.utc if rules.time_zone == 'UTC' else ZoneInfo(rules.time_zone)
        self.columns = mapping.columns
        self.indexes = list(mapping.columns.items())
        self.names = {column.key: column.en for column in COLUMNS[rules.kind]}
        self.names.update({key: mapping.headers[index].strip().rstrip('*').strip() or self.names.get(key, key)
                           for key, index in mapping.columns.items()})
        self.required = frozenset(column.key for column in COLUMNS[rules.kind] if column.required)
        self.variables = list(mapping.variables.items())
        self.variable_names = {normalize_header(name): name for name in mapping.variables}
        self.approved = {channel: rules.approved_senders.get(channel.value, frozenset()) for channel in Channel}
        self.template_steps = rules.template_steps if rules.uses_template else None
        self.template_variables = templates.template_variables(self.template_steps) if self.template_steps else []
        self.lengths = [(key, limit) for key, limit in _MAX_LENGTHS.items() if key in mapping.columns]
        self.scheduled = 'start_date' in mapping.columns or 'start_time' in mapping.columns
        if fixed := _FIXED_STEPS.get(rules.kind):
            self.channels = [(fixed[0], fixed[0].value, (), fixed[1])]
        else:
            self.channels = [(channel, channel.value, triggers, fields) for channel, triggers, fields in _FULL_CHANNELS
                             if rules.kind is TaskKind.FULL and any(fields[name] in mapping.columns
                                                                    for name in triggers)]

    def check(self, number: int, cells: list[object]) -> CheckedRow | RowProblem:
        try:
            return self._check(number, cells)
        except _Problem as problem:
            return RowProblem(number, self.names.get(problem.column, problem.column), problem.reason)

    def _check(self, number: int, cells: list[object]) -> CheckedRow:
        width = len(cells)
        row = {key: _text(cells[index]) if index < width else '' for key, index in self.indexes}
        contacts = self._contacts(row)
        for key, limit in self.lengths:
            if len(row[key]) > limit:
                raise _Problem(key, f'{self.names[key]}: use at most {limit} characters.')
        callback_url, callback_data = self._callback(row)
        validity, required = self._validity(row), self._required(row)
        steps = self._steps(row, validity, required)
        variables = self._variables(cells, steps)
        self._check_reach(steps or self.template_steps, contacts, row)
        destination = Destination(
            phone=contacts[0], email=contacts[2], external_id=row.get('external_id') or None,
            client_id=row.get('client_id') or None, messenger_user_id=row.get('messenger_user_id') or None,
            variables=variables, steps=steps, send_at=self._send_at(cells) if self.scheduled else None,
            allowed_time_ranges=self._ranges(row),
            callback_url=callback_url, callback_data=callback_data, group_id=row.get('group_id') or None,
            flow_id=row.get('flow_id') or None)
        return CheckedRow(number, destination, contacts, row.get('bulk_id') or None)

    def _empty(self, key: str) -> _Problem:
        return _Problem(key, f'{self.names.get(key, key)} is empty.')

    def _contacts(self, row: dict[str, str]) -> phones.Contacts:
        phone, email = row.get('phone', ''), row.get('email', '')
        if not phone and 'phone' in self.required:
            raise self._empty('phone')
        if not (phone or email or row.get('messenger_user_id')):
            raise _Problem('phone', 'Fill the phone, the email or the messenger user ID.')
        try:
            e164, country = phones.normalize_phone_and_country(phone, self.region) if phone else (None, '')
        except ValueError as error:
            raise _Problem('phone', f'{self.names["phone"]}: {error}.') from None
        try:
            email = phones.normalize_email(email) if email else None
        except ValueError as error:
            raise _Problem('email', f'{self.names["email"]}: {error}.') from None
        return e164, country, email

    def _callback(self, row: dict[str, str]) -> tuple[str | None, str | None]:
        url, data = row.get('callback_url', ''), row.get('callback_data', '')
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ('http', 'https') or not parts.netloc:
                raise _Problem('callback_url', f'{self.names["callback_url"]}: enter a web address starting with '
                                               f'http:// or https://.')
        if data and self.kind is TaskKind.FULL:
            try:
                json.loads(data)
            except ValueError:
                raise _Problem('callback_data', f'{self.names["callback_data"]}: not valid JSON.') from None
        return url or None, data or None

    def _validity(self, row: dict[str, str]) -> int | None:
        errors: dict[str, str] = {}
        minutes = templates.clean_validity(row.get('validity_period'), 'validity_period', errors)
        if errors:
            raise _Problem('validity_period', f'{self.names["validity_period"]}: {errors["validity_period"]}')
        return minutes

    def _required(self, row: dict[str, str]) -> bool | None:
        value = row.get('required', '').lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return None if not value else False
        raise _Problem('required', f'{self.names["required"]}: enter true or false.')

    def _steps(self, row: dict[str, str], validity: int | None, required: bool | None) -> list[dict[str, Any]] | None:
        """The row's own channel steps (validated as a template's are), or None when it uses the template."""
        steps = [self._step(row, channel, value, fields) for channel, value, triggers, fields in self.channels
                 if not triggers or any(row[fields[name]] for name in triggers if fields[name] in row)]
        if self.kind is TaskKind.WHATSAPP_CHAT_START and (parameters := row.get('template_parameters')):
            steps[0]['templateData'] = [value.strip() for value in parameters.split('|')]
        if not steps:
            if self.template_steps is None:
                raise _Problem('sms_text', 'Fill the text of a channel (Viber, WhatsApp, Telegram, SMS or email) or '
                                           'choose a template for the task.')
            if validity is None and required is None:
                return None
            steps = [dict(step) for step in self.template_steps]
        for step in steps:
            if validity is not None or 'validityPeriod' not in step:
                step['validityPeriod'] = validity
            if required is not None or 'required' not in step:
                step['required'] = bool(required)
        return steps

    def _step(self, row: dict[str, str], channel: Channel, value: str, fields: dict[str, str]) -> dict[str, Any]:
        step: dict[str, Any] = {'channel': value}
        for name, key in fields.items():
            if value := row.get(key):
                step[name] = value
        errors = templates.step_errors(channel, step, self.approved[channel])
        if errors:
            name, message = next(iter(errors.items()))
            key = fields.get(name, name)
            raise self._empty(key) if not step.get(name) else _Problem(key, f'{self.names.get(key, key)}: {message}')
        if channel is Channel.VIBER and bool(step.get('buttonText')) != bool(step.get('buttonUrl')):
            key = fields['buttonUrl' if step.get('buttonText') else 'buttonText']
            raise _Problem(key, 'Give the button text and the button URL together, or neither.')
        return step

    def _variables(self, cells: list[object], steps: list[dict[str, Any]] | None) -> dict[str, Any]:
        width = len(cells)
        values = {name: _text(cells[index]) if index < width else '' for name, index in self.variables}
        used = self.template_variables if steps is None else _step_variables(steps)
        for name in used:
            header = name if name in values else self.variable_names.get(normalize_header(name))
            if header is None:
                raise _Problem(name, f'The text uses {{{{{name}}}}} but the file has no column “{name}”.')
            if not values[header]:
                raise _Problem(header, f'{header} is empty: the text uses {{{{{name}}}}}.')
            values[name] = values[header]
        return values

    def _check_reach(self, steps: list[dict[str, Any]] | None, contacts: phones.Contacts,
                     row: dict[str, str]) -> None:
        """Some channel of the row must have its recipient: a phone, an email or a messenger user ID."""
        available = {'phone': contacts[0], 'email': contacts[2], 'messenger_user_id': row.get('messenger_user_id')}
        channels = [_CHANNELS[step['channel']] for step in steps or ()]
        if channels and not any(available[contact_field(channel)] for channel in channels):
            needs = ', '.join(f'{channel.label} needs the {contact_field(channel).replace("_", " ")}'
                              for channel in channels)
            raise _Problem('phone', f'No channel can reach this recipient: {needs}.')

    def _send_at(self, cells: list[object]) -> datetime | None:
        day = self._date(cells)
        moment = self._time(cells)
        if day is None:
            if moment is not None:
                raise self._empty('start_date')
            return None
        if isinstance(day, datetime):
            day, moment = day.date(), moment or day.time()
        return datetime.combine(day, moment or time(0), self.zone).astimezone(timezone.utc)

    def _raw(self, cells: list[object], key: str) -> object:
        index = self.columns.get(key)
        return cells[index] if index is not None and index < len(cells) else ''

    def _date(self, cells: list[object]) -> date | None:
        value = self._raw(cells, 'start_date')
        if isinstance(value, date):
            return value
        text = _text(value)
        if not text:
            return None
        try:
            if found := _DATE_DMY.fullmatch(text):
                return date(int(found[3]), int(found[2]), int(found[1]))
            return datetime.fromisoformat(text) if 'T' in text or ' ' in text else date.fromisoformat(text)
        except ValueError:
            raise _Problem('start_date', f'{self.names["start_date"]}: enter a date as YYYY-MM-DD or '
                                         f'DD.MM.YYYY.') from None

    def _time(self, cells: list[object]) -> time | None:
        value = self._raw(cells, 'start_time')
        if isinstance(value, datetime):
            return value.time()
        if isinstance(value, time):
            return value
        if isinstance(value, timedelta) and value < timedelta(days=1):
            return (datetime.min + value).time()
        if isinstance(value, float) and 0 <= value < 1:  # a time typed into a cell not formatted as time
            return (datetime.min + timedelta(days=value)).time().replace(microsecond=0)
        text = _text(value)
        if not text:
            return None
        found = _TIME.fullmatch(text)
        try:
            if found:
                return time(int(found[1]), int(found[2]), int(found[3] or 0))
        except ValueError:
            pass
        raise _Problem('start_time', f'{self.names["start_time"]}: enter a time as HH-MM-SS or HH:MM:SS.')

    def _ranges(self, row: dict[str, str]) -> list[list[str]] | None:
        text = row.get('allowed_time_ranges', '')
        if not text:
            return None
        pairs = []
        for part in _RANGE_SEPARATORS.split(text):
            if not part.strip():
                continue
            found = _RANGE.fullmatch(part.strip())
            if not found:
                raise _Problem('allowed_time_ranges', f'{self.names["allowed_time_ranges"]}: write ranges as '
                                                      f'09:00-13:00, 14:00-18:00.')
            pairs.append((f'{int(found[1]):02d}:{found[2]}', f'{int(found[3]):02d}:{found[4]}'))
        errors: dict[str, str] = {}
        ranges = templates.clean_ranges(pairs, errors)
        if errors:
            raise _Problem('allowed_time_ranges', f'{self.names["allowed_time_ranges"]}: '
                                                  f'{next(iter(errors.values()))}')
        return [list(pair) for pair in ranges]


def _step_variables(steps: list[dict[str, Any]]) -> list[str]:
    if not any('{{' in value for step in steps for value in step.values() if isinstance(value, str)):
        return []
    return templates.template_variables(steps)


# --- the problems report -----------------------------------------------------------------------------------------

def problems_workbook(problems: list[RowProblem], table: Table) -> bytes:
    """A workbook of the rows that cannot be sent: why, and the row as it was in the file."""
    cells = dict(table.rows)
    rows = [[problem.row, problem.column, problem.reason, *cells.get(problem.row, ())]
            for problem in sorted(problems, key=lambda problem: problem.row)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / 'problems.xlsx'
        xlsx.write_xlsx(path, 'Problems', ['Row', 'Column', 'Reason', *table.headers], rows)
        return path.read_bytes()
