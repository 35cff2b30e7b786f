"""A real SMPP 3.4 SMSC on 127.0.0.1, run in its own process, for the SMPP provider's tests.

`python tests/smpp_server.py --port N --control-port M --record FILE` serves SMPP on N (over TLS with --certificate
and --key): bind_transceiver with a credential check, submit_sm answered with message ids (after `resp_delay`), a
delivery receipt (deliver_sm, esm_class 0x04, the Appendix B text and, with `receipt_tlvs`, the receipted_message_id
and message_state TLVs) for every part after `receipt_delay`, enquire_link answered. Every PDU it receives is
appended to FILE as a JSON line. The control port takes one JSON command a line and answers one:
{"do": "set", <option>: value} (throttle: answer the next N submit_sm with ESME_RTHROTTLED, after letting
`throttle_skip` through; refuse: [status, N]; drop_after_submits: N, the Nth next submit_sm is recorded and its
connection cut unanswered; resp_delay, receipt_delay, receipts, receipt_tlvs, receipt_stats: stats for the next
receipts in order), {"do": "drop"} cuts every connection, {"do": "enquire_link"} sends one to every session,
{"do": "receipt", "id": ..., "stat": ...} sends a receipt for any id, {"do": "stats"}.

Its PDU code is written here from the specification, apart from the provider's codec, so that a misreading of the
wire format in one is not mirrored by the other. `Smsc` runs and drives the process from a test.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOST = '127.0.0.1'
RESP = 0x80000000
BIND_TRANSCEIVER, SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x09, 0x04, 0x05, 0x06, 0x15
NAMES = {0x09: 'bind_transceiver', 0x04: 'submit_sm', 0x05: 'deliver_sm', 0x06: 'unbind', 0x15: 'enquire_link',
         0x80000000: 'generic_nack'}
ESME_RINVBNDSTS, ESME_RINVPASWD, ESME_RTHROTTLED = 0x04, 0x0E, 0x58
STATE_NUMBERS = {'ENROUTE': 1, 'DELIVRD': 2, 'EXPIRED': 3, 'DELETED': 4, 'UNDELIV': 5, 'ACCEPTD': 6, 'UNKNOWN': 7,
                 'REJECTD': 8}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def pdu(command_id: int, sequence: int, body: bytes = b'', status: int = 0) -> bytes:
    return struct.pack('>IIII', 16 + len(body), command_id, status, sequence) + body


def cstr(value: str) -> bytes:
    return value.encode() + b'\0'


class Fields:
    """Reads a PDU body field by field."""

    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def cstr(self) -> str:
        end = self.body.index(b'\0', self.at)
        value, self.at = self.body[self.at:end].decode('latin-1'), end + 1
        return value

    def int8(self) -> int:
        self.at += 1
        return self.body[self.at - 1]

    def octets(self, count: int) -> bytes:
        self.at += count
        return self.body[self.at - count:self.at]


def parse_submit(body: bytes) -> dict[str, Any]:
    f = Fields(body)
    fields = {'service_type': f.cstr(), 'source_addr_ton': f.int8(), 'source_addr_npi': f.int8(),
              'source_addr': f.cstr(), 'dest_addr_ton': f.int8(), 'dest_addr_npi': f.int8(),
              'destination_addr': f.cstr(), 'esm_class': f.int8(), 'protocol_id': f.int8(),
              'priority_flag': f.int8(), 'schedule_delivery_time': f.cstr(), 'validity_period': f.cstr(),
              'registered_delivery': f.int8(), 'replace_if_present_flag': f.int8(), 'data_coding': f.int8(),
              'sm_default_msg_id': f.int8()}
    fields['sm_length'] = f.int8()
    fields['short_message'] = f.octets(fields['sm_length']).hex()
    fields['tlvs'] = body[f.at:].hex()
    return fields


class Simulator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.system_id, self.password = args.system_id, args.password
        self.record = open(args.record, 'a', buffering=1)
        self.options: dict[str, Any] = {'throttle': 0, 'throttle_skip': 0, 'refuse': [0, 0], 'drop_after_submits': 0,
                                        'resp_delay': 0.0, 'receipt_delay': 0.05, 'receipts': True,
                                        'receipt_tlvs': True, 'receipt_stats': []}
        self.sessions: dict[int, asyncio.StreamWriter] = {}
        self.bound: set[int] = set()
        self.counter = 0
        self.ids = 0x5A000000
        self.outstanding: dict[int, int] = {}
        self.max_outstanding = 0
        self.tasks: set[asyncio.Task] = set()

    def later(self, delay: float, coroutine: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await coroutine
        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def write(self, session: int, data: bytes) -> None:
        writer = self.sessions.get(session)
        if writer is not None and not writer.is_closing():
            writer.write(data)

    def drop(self, session: int) -> None:
        writer = self.sessions.pop(session, None)
        self.bound.discard(session)
        if writer is not None:
            writer.transport.abort()

    async def serve_smpp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counter += 1
        session = self.counter
        self.sessions[session] = writer
        self.outstanding[session] = 0
        try:
            while True:
                length, command_id, status, sequence = struct.unpack('>IIII', await reader.readexactly(16))
                body = await reader.readexactly(length - 16)
                self.receive(session, command_id, status, sequence, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.drop(session)

    def receive(self, session: int, command_id: int, status: int, sequence: int, body: bytes) -> None:
        entry: dict[str, Any] = {'session': session, 'command': NAMES.get(command_id & ~RESP, hex(command_id)),
                                 'command_id': command_id, 'status': status, 'sequence': sequence, 't': time.time()}
        if command_id & RESP and command_id != RESP:
            entry['command'] += '_resp'
        if command_id == BIND_TRANSCEIVER:
            f = Fields(body)
            entry |= {'system_id': f.cstr(), 'password': f.cstr(), 'system_type': f.cstr(),
                      'interface_version': f.int8()}
        elif command_id == SUBMIT_SM:
            entry |= parse_submit(body)
        self.answer_request(session, command_id, sequence, entry)
        self.record.write(json.dumps(entry) + '\n')

    def answer_request(self, session: int, command_id: int, sequence: int, entry: dict[str, Any]) -> None:
        if command_id == BIND_TRANSCEIVER:
            if (entry['system_id'], entry['password']) != (self.system_id, self.password):
                self.write(session, pdu(BIND_TRANSCEIVER | RESP, sequence, status=ESME_RINVPASWD))
                return
            self.bound.add(session)
            self.write(session, pdu(BIND_TRANSCEIVER | RESP, sequence, cstr('SIMSMSC')))
        elif command_id == ENQUIRE_LINK:
            self.write(session, pdu(ENQUIRE_LINK | RESP, sequence))
        elif command_id == UNBIND:
            self.write(session, pdu(UNBIND | RESP, sequence))
            self.drop(session)
        elif command_id == SUBMIT_SM:
            entry['message_id'] = self.submit(session, sequence, entry)

    def submit(self, session: int, sequence: int, entry: dict[str, Any]) -> str | None:
        """Answers a submit_sm; returns the message id it was given, None when it was not accepted."""
        o = self.options
        if session not in self.bound:
            self.write(session, pdu(SUBMIT_SM | RESP, sequence, status=ESME_RINVBNDSTS))
            return None
        if o['drop_after_submits']:
            o['drop_after_submits'] -= 1
            if not o['drop_after_submits']:
                self.drop(session)
                return None
        if o['throttle'] and o['throttle_skip']:
            o['throttle_skip'] -= 1
        elif o['throttle']:
            o['throttle'] -= 1
            self.write(session, pdu(SUBMIT_SM | RESP, sequence, status=ESME_RTHROTTLED))
            return None
        if o['refuse'][1]:
            o['refuse'][1] -= 1
            self.write(session, pdu(SUBMIT_SM | RESP, sequence, status=o['refuse'][0]))
            return None
        self.ids += 1
        message_id = f'{self.ids:X}'
        self.outstanding[session] += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding[session])
        self.later(o['resp_delay'], self.answer(session, sequence, message_id))
        if o['receipts']:
            stat = o['receipt_stats'].pop(0) if o['receipt_stats'] else 'DELIVRD'
            self.later(o['resp_delay'] + o['receipt_delay'],
                       self.receipt(session, message_id, stat, entry['destination_addr'], entry['source_addr']))
        return message_id

    async def answer(self, session: int, sequence: int, message_id: str) -> None:
        self.outstanding[session] -= 1
        self.write(session, pdu(SUBMIT_SM | RESP, sequence, cstr(message_id)))

    async def receipt(self, session: int, message_id: str, stat: str, source: str = '79000000000',
                      destination: str = 'Herald') -> None:
        """A delivery receipt on the session (or, when it is gone, the first bound one, as SMSCs do)."""
        if session not in self.bound:
            session = min(self.bound, default=session)
        now = time.strftime('%y%m%d%H%M', time.gmtime())
        err = '000' if stat == 'DELIVRD' else '001'
        text = f'id:{message_id} sub:001 dlvrd:{int(stat == "DELIVRD"):03} submit date:{now} done date:{now} ' \
               f'stat:{stat} err:{err} text:'
        tlvs = b''
        if self.options['receipt_tlvs']:
            tlvs = struct.pack('>HH', 0x001E, len(message_id) + 1) + cstr(message_id) + \
                struct.pack('>HHB', 0x0427, 1, STATE_NUMBERS[stat])
        body = (cstr('') + bytes((1, 1)) + cstr(source) + bytes((5, 0)) + cstr(destination) + bytes((0x04, 0, 0))
                + cstr('') + cstr('') + bytes((0, 0, 0, 0, len(text))) + text.encode() + tlvs)
        self.ids += 1
        self.write(session, pdu(DELIVER_SM, self.ids, body))

    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            command = json.loads(line)
            answer: dict[str, Any] = {'ok': True}
            action = command.pop('do')
            if action == 'set':
                self.options.update(command)
            elif action == 'drop':
                for session in list(self.sessions):
                    self.drop(session)
            elif action == 'enquire_link':
                for session in list(self.bound):
                    self.ids += 1
                    self.write(session, pdu(ENQUIRE_LINK, self.ids))
            elif action == 'receipt':
                for session in list(self.bound):
                    await self.receipt(session, command['id'], command['stat'])
            elif action == 'stats':
                answer |= {'max_outstanding': self.max_outstanding, 'connections': self.counter,
                           'bound': len(self.bound)}
            writer.write(json.dumps(answer).encode() + b'\n')
            await writer.drain()
        writer.close()


async def main(args: argparse.Namespace) -> None:
    simulator = Simulator(args)
    tls = None
    if args.certificate:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.certificate, args.key)
    smpp = await asyncio.start_server(simulator.serve_smpp, HOST, args.port, ssl=tls)
    control = await asyncio.start_server(simulator.serve_control, HOST, args.control_port)
    print('ready', flush=True)
    async with smpp, control:
        await asyncio.gather(smpp.serve_forever(), control.serve_forever())


class Smsc:
    """The simulator in a child process; `restart()` starts a new one on the same ports (sessions and options
    gone, the record kept)."""

    def __init__(self, directory: Path, system_id: str = 'herald', password: str = 'secret',
                 certificate: tuple[Path, Path] | None = None) -> None:
        self.port, self.control_port = free_port(), free_port()
        self.record = directory / f'smsc-{self.port}.jsonl'
        self.system_id, self.password = system_id, password
        self.tls = ['--certificate', str(certificate[0]), '--key', str(certificate[1])] if certificate else []
        self.process: subprocess.Popen | None = None

    def start(self) -> Smsc:
        self.process = subprocess.Popen(
            [sys.executable, __file__, '--port', str(self.port), '--control-port', str(self.control_port),
             '--record', str(self.record), '--system-id', self.system_id, '--password', self.password, *self.tls],
            stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != 'ready':
            raise RuntimeError('the SMPP simulator did not start')
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    async def control(self, action: str, **options: Any) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(HOST, self.control_port)
        writer.write(json.dumps({'do': action, **options}).encode() + b'\n')
        answer = json.loads(await reader.readline())
        writer.close()
        await writer.wait_closed()
        return answer

    def pdus(self, command: str | None = None) -> list[dict[str, Any]]:
        """The PDUs received so far (of one command), in order."""
        if not self.record.exists():
            return []
        entries = [json.loads(line) for line in self.record.read_text().splitlines() if line]
        return [entry for entry in entries if command is None or entry['command'] == command]


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--control-port', type=int, required=True)
    parser.add_argument('--record', required=True)
    parser.add_argument('--system-id', default='herald')
    parser.add_argument('--password', default='secret')
    parser.add_argument('--certificate', help='serve SMPP over TLS with this certificate (PEM)')
    parser.add_argument('--key', help="the certificate's private key (PEM)")
    asyncio.run(main(parser.parse_args()))
