"""SMPP 3.4 protocol data units (SMPP v3.4 Issue 1.2, sections 3–5) and the GSM 03.38 / UCS-2 short message
encodings: the few PDUs an ESME bound as a transceiver exchanges, encoded and decoded without any I/O."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from domain.sms import is_gsm7

HEADER = struct.Struct('>IIII')  # command_length, command_id, command_status, sequence_number
MAX_PDU = 64 * 1024
INTERFACE_VERSION = 0x34
RESPONSE = 0x80000000

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015

# command_status values (section 5.1.3)
STATUS_NAMES = {
    0x00: 'ESME_ROK', 0x01: 'ESME_RINVMSGLEN', 0x02: 'ESME_RINVCMDLEN', 0x03: 'ESME_RINVCMDID',
    0x04: 'ESME_RINVBNDSTS', 0x05: 'ESME_RALYBND', 0x06: 'ESME_RINVPRTFLG', 0x07: 'ESME_RINVREGDLVFLG',
    0x08: 'ESME_RSYSERR', 0x0A: 'ESME_RINVSRCADR', 0x0B: 'ESME_RINVDSTADR', 0x0C: 'ESME_RINVMSGID',
    0x0D: 'ESME_RBINDFAIL', 0x0E: 'ESME_RINVPASWD', 0x0F: 'ESME_RINVSYSID', 0x11: 'ESME_RCANCELFAIL',
    0x13: 'ESME_RREPLACEFAIL', 0x14: 'ESME_RMSGQFUL', 0x15: 'ESME_RINVSERTYP', 0x33: 'ESME_RINVNUMDESTS',
    0x34: 'ESME_RINVDLNAME', 0x40: 'ESME_RINVDESTFLAG', 0x42: 'ESME_RINVSUBREP', 0x43: 'ESME_RINVESMCLASS',
    0x44: 'ESME_RCNTSUBDL', 0x45: 'ESME_RSUBMITFAIL', 0x48: 'ESME_RINVSRCTON', 0x49: 'ESME_RINVSRCNPI',
    0x50: 'ESME_RINVDSTTON', 0x51: 'ESME_RINVDSTNPI', 0x53: 'ESME_RINVSYSTYP', 0x54: 'ESME_RINVREPFLAG',
    0x55: 'ESME_RINVNUMMSGS', 0x58: 'ESME_RTHROTTLED', 0x61: 'ESME_RINVSCHED', 0x62: 'ESME_RINVEXPIRY',
    0x63: 'ESME_RINVDFTMSGID', 0x64: 'ESME_RX_T_APPN', 0x65: 'ESME_RX_P_APPN', 0x66: 'ESME_RX_R_APPN',
    0x67: 'ESME_RQUERYFAIL', 0xC0: 'ESME_RINVOPTPARSTREAM', 0xC1: 'ESME_ROPTPARNOTALLWD', 0xC2: 'ESME_RINVPARLEN',
    0xC3: 'ESME_RMISSINGOPTPARAM', 0xC4: 'ESME_RINVOPTPARAMVAL', 0xFE: 'ESME_RDELIVERYFAILURE',
    0xFF: 'ESME_RUNKNOWNERR',
}
ESME_ROK, ESME_RINVCMDID, ESME_RMSGQFUL, ESME_RTHROTTLED = 0x00, 0x03, 0x14, 0x58
ESME_RINVPASWD, ESME_RINVSYSID, ESME_RINVSYSTYP = 0x0E, 0x0F, 0x53

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423

ESM_CLASS_UDHI = 0x40
ESM_CLASS_RECEIPT = 0x04  # message type bits (0x3C) of a deliver_sm carrying an SMSC delivery receipt
CODING_GSM, CODING_UCS2 = 0x00, 0x08

# GSM 03.38 default alphabet in code order (0x1B, the escape to the extension table, is a placeholder), and the
# extension table's characters with their codes.
GSM_BASIC = ('@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?'
             '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà')
GSM_EXTENSION = {'\f': 0x0A, '^': 0x14, '{': 0x28, '}': 0x29, '\\': 0x2F, '[': 0x3C, '~': 0x3D, ']': 0x3E,
                 '|': 0x40, '€': 0x65}
_GSM_TABLE = {ord(char): chr(code) for code, char in enumerate(GSM_BASIC) if code != 0x1B} | {
    ord(char): '\x1b' + chr(code) for char, code in GSM_EXTENSION.items()}


class PduError(Exception):
    """Bytes that are not a well-formed PDU."""


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f'0x{status:08X}')


def gsm_encode(text: str) -> bytes:
    """GSM 03.38 septets, one per octet (SMPP's unpacked form), extension characters as ESC + code."""
    if not is_gsm7(text):
        raise ValueError('not a GSM 03.38 text')
    return text.translate(_GSM_TABLE).encode('ascii')


def ucs2_encode(text: str) -> bytes:
    """UCS-2 as SMSCs take it: UTF-16 big-endian (characters outside the BMP as surrogate pairs)."""
    return text.encode('utf-16-be')


def udh(reference: int, total: int, number: int) -> bytes:
    """A concatenation user data header: IE 0x00 (8-bit reference), 3 octets: reference, total, part number."""
    return bytes((0x05, 0x00, 0x03, reference & 0xFF, total, number))


@dataclass(frozen=True)
class Pdu:
    command_id: int
    sequence: int
    status: int = ESME_ROK
    body: bytes = b''

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE)

    def encode(self) -> bytes:
        return HEADER.pack(HEADER.size + len(self.body), self.command_id, self.status, self.sequence) + self.body


def parse_header(header: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number); PduError for an impossible length."""
    length, command_id, status, sequence = HEADER.unpack(header)
    if not HEADER.size <= length <= MAX_PDU:
        raise PduError(f'invalid command_length {length}')
    return length, command_id, status, sequence


def c_string(value: str, max_length: int) -> bytes:
    """A C-Octet String of at most `max_length` octets including the NUL."""
    if not value.isascii():
        raise ValueError(f'{value!r} is not ASCII')
    encoded = value.encode()
    if len(encoded) >= max_length or b'\0' in encoded:
        raise ValueError(f'{value!r} is longer than {max_length - 1} characters')
    return encoded + b'\0'


def bind_transceiver(system_id: str, password: str, system_type: str) -> bytes:
    return b''.join((c_string(system_id, 16), c_string(password, 9), c_string(system_type, 13),
                     bytes((INTERFACE_VERSION, 0, 0)), c_string('', 41)))


@dataclass(frozen=True)
class ShortMessage:
    """The fields submit_sm and deliver_sm share (section 4.4.1), those Herald uses."""
    source_addr: str
    destination_addr: str
    short_message: bytes
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    service_type: str = ''
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        if len(self.short_message) > 254:
            raise ValueError('short_message longer than 254 octets')
        return b''.join((
            c_string(self.service_type, 6), bytes((self.source_ton, self.source_npi)), c_string(self.source_addr, 21),
            bytes((self.dest_ton, self.dest_npi)), c_string(self.destination_addr, 21),
            bytes((self.esm_class, 0, 0)),  # protocol_id, priority_flag
            c_string('', 17), c_string('', 17),  # schedule_delivery_time, validity_period: the SMSC's defaults
            bytes((self.registered_delivery, 0, self.data_coding, 0, len(self.short_message))), self.short_message,
            b''.join(struct.pack('>HH', tag, len(value)) + value for tag, value in self.tlvs.items()),
        ))

    @classmethod
    def decode(cls, body: bytes) -> ShortMessage:
        reader = _Reader(body)
        service_type = reader.c_string()
        source_ton, source_npi = reader.octet(), reader.octet()
        source_addr = reader.c_string()
        dest_ton, dest_npi = reader.octet(), reader.octet()
        destination_addr = reader.c_string()
        esm_class = reader.octet()
        reader.octet(), reader.octet()  # protocol_id, priority_flag
        reader.c_string(), reader.c_string()  # schedule_delivery_time, validity_period
        registered_delivery = reader.octet()
        reader.octet()  # replace_if_present_flag
        data_coding = reader.octet()
        reader.octet()  # sm_default_msg_id
        short_message = reader.take(reader.octet())
        return cls(source_addr, destination_addr, short_message, source_ton, source_npi, dest_ton, dest_npi,
                   esm_class, registered_delivery, data_coding, service_type, reader.tlvs())


def message_id(body: bytes) -> str:
    """The message_id of a submit_sm_resp ('' when an error response has no body)."""
    return _Reader(body).c_string() if body else ''


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise PduError('PDU body too short')
        chunk = self.data[self.at:self.at + count]
        self.at += count
        return chunk

    def octet(self) -> int:
        return self.take(1)[0]

    def c_string(self) -> str:
        end = self.data.find(b'\0', self.at)
        if end < 0:
            raise PduError('unterminated C-Octet String')
        value = self.data[self.at:end].decode('latin-1')
        self.at = end + 1
        return value

    def tlvs(self) -> dict[int, bytes]:
        tlvs = {}
        while self.at < len(self.data):
            tag, length = struct.unpack('>HH', self.take(4))
            tlvs[tag] = self.take(length)
        return tlvs
