"""The history's filters, pages, details and cancelling, on messages made by the enqueue service."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from helpers import make_actor

from domain import enqueue, history, sql
from domain.auth import Actor
from domain.channels import Channel
from domain.delivery import StatusChange, change_status
from domain.enqueue import Destination, SendRequest
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.history import HistoryFilter, Sort, StatusView
from domain.models import Message, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus as S

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Hello', 'text': 'Hi {{name}}'}
LATER = datetime.now(timezone.utc) + timedelta(days=1)  # queued for tomorrow: nothing dispatches them meanwhile


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, *destinations: Destination, steps: list | None = None) -> list[str]:
    result = await enqueue.enqueue(actor, SendRequest(steps=steps or [SMS], destinations=list(destinations),
                                                      send_at=LATER))
    return [message.id for message in result.messages]


def to(phone: str, email: str | None = None) -> Destination:
    return Destination(phone=phone, email=email, variables={'name': 'Ann'})


async def listed(actor: Actor, **filters) -> list[str]:
    page = await history.list_messages(actor, HistoryFilter(**filters), 0, 100)
    assert page.total == len(page.rows)
    return [row['recipient'] for row in page.rows]


async def test_search_by_any_part_of_the_phone_uses_the_trigram_index(operator: Actor) -> None:
    await send(operator, to('+79123456789'), to('+79001112233'), to('+447700900123'))
    assert await listed(operator, search='3456') == ['+79123456789']
    assert await listed(operator, search='+7 (900) 111') == ['+79001112233']
    assert sorted(await listed(operator, search='79')) == ['+79001112233', '+79123456789']  # short: a scan
    assert await listed(operator, search='5555') == []
    if sql.is_postgres():  # its planner picks the trigram index once the table is big enough to pay for it
        indexes = await sql.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_recipient_trigrams'")
        assert 'gin_trgm_ops' in indexes[0]['indexdef']
        return
    clause, params = history.where(HistoryFilter(search='3456'))
    plan = await sql.execute(f'EXPLAIN QUERY PLAN SELECT count(*) FROM messages m WHERE {clause}', params)
    assert any('message_search VIRTUAL TABLE' in row['detail'] for row in plan), plan


async def test_search_finds_email_parts_and_ignores_like_wildcards(operator: Actor) -> None:
    await send(operator, Destination(email='Ann.Lee@example.com', variables={'name': 'A'}),
               Destination(email='bob_smith@example.com', variables={'name': 'B'}), steps=[EMAIL])
    assert await listed(operator, search='ann.lee') == ['Ann.Lee@example.com']
    assert await listed(operator, search='b_s') == ['bob_smith@example.com']
    assert await listed(operator, search='%') == []


async def test_filters_by_status_channel_period_and_bulk(operator: Actor) -> None:
    first = await send(operator, to('+79123456789', 'a@example.com'), steps=[SMS, EMAIL])
    second = await send(operator, to('+79123456780'))
    await change_status([StatusChange(first[0], S.SENT), StatusChange(second[0], S.SENT)])
    await change_status([StatusChange(first[0], S.UNDELIVERED, 'Absent subscriber'),
                         StatusChange(second[0], S.DELIVERED)])
    assert await listed(operator, status=S.DELIVERED) == ['+79123456780']
    assert await listed(operator, channel=Channel.EMAIL) == ['a@example.com']
    assert await listed(operator, status=StatusView.OMITTED_OPTIONAL) == ['+79123456789']  # handed over to email
    bulk = (await Message.get(id=second[0])).bulk_id
    assert await listed(operator, bulk_id=bulk) == ['+79123456780']
    today = date.today()
    assert len(await listed(operator, date_from=today, date_to=today)) == 3
    assert await listed(operator, date_to=today - timedelta(days=1)) == []
    assert await listed(operator, date_from=today + timedelta(days=2)) == []


async def test_created_optional_are_fallbacks_still_waiting(operator: Actor) -> None:
    await send(operator, to('+79123456789', 'a@example.com'), steps=[SMS, EMAIL])
    assert await listed(operator, status=StatusView.CREATED_OPTIONAL) == ['a@example.com']
    assert await listed(operator, status=S.QUEUED) == ['+79123456789']


async def test_period_days_are_the_operators_days(operator: Actor) -> None:
    [message_id] = await send(operator, to('+79123456789'))
    created = datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc)  # already March 2 in Moscow (UTC+3)
    await Message.filter(id=message_id).update(created_at=created)
    assert await listed(operator, date_from=date(2026, 3, 2), zone='Europe/Moscow') == ['+79123456789']
    assert await listed(operator, date_from=date(2026, 3, 2), zone='UTC') == []
    assert await listed(operator, date_to=date(2026, 3, 1), zone='UTC') == ['+79123456789']


async def test_pages_and_sorting(operator: Actor) -> None:
    ids = await send(operator, *[to(f'+7912345678{i}') for i in range(5)])
    for i, message_id in enumerate(ids):
        await Message.filter(id=message_id).update(created_at=datetime(2026, 1, 1, 12, i, tzinfo=timezone.utc))
    await Message.filter(id=ids[0]).update(sent_at=datetime(2026, 1, 2, tzinfo=timezone.utc))
    newest = await history.list_messages(operator, HistoryFilter(), 0, 2)
    assert newest.total == 5 and [row['recipient'][-1] for row in newest.rows] == ['4', '3']
    oldest = await history.list_messages(operator, HistoryFilter(), 2, 2, Sort.CREATED, descending=False)
    assert [row['recipient'][-1] for row in oldest.rows] == ['2', '3']
    by_sent = await history.list_messages(operator, HistoryFilter(), 0, 5, Sort.SENT, descending=True)
    assert by_sent.rows[0]['id'] == ids[0]  # the only one sent comes first; unsent ones after it
    assert by_sent.rows[0]['created_at'].startswith('2026-01-01T12:00:00')


async def test_details_show_fields_timeline_and_cascade(operator: Actor) -> None:
    sms_id, email_id = await send(operator, to('+79123456789', 'a@example.com'), steps=[SMS, EMAIL])
    await change_status([StatusChange(sms_id, S.SENT, provider_message_id='p-1')])
    details = await history.message_details(operator, sms_id)
    assert details.fields['text'] == 'Hi Ann' and details.fields['provider_message_id'] == 'p-1'
    assert details.fields['phone'] == '+79123456789' and details.fields['sender'] == 'MyShop'
    assert [event['status'] for event in details.events] == ['QUEUED', 'SENT']
    assert [step['channel'] for step in details.steps] == ['sms', 'email']
    assert not details.can_cancel
    with pytest.raises(NotFound):
        await history.message_details(operator, 'no such id')


async def test_cancelling_ends_the_message_and_its_waiting_fallbacks(operator: Actor) -> None:
    sms_id, email_id = await send(operator, to('+79123456789', 'a@example.com'), steps=[SMS, EMAIL])
    await history.cancel_message(operator, sms_id)
    statuses = {str(m.id): m.status for m in await Message.all()}
    assert statuses == {sms_id: S.CANCELED, email_id: S.CANCELED}
    with pytest.raises(ValidationError):
        await history.cancel_message(operator, sms_id)  # nothing moves twice


async def test_a_sent_message_cannot_be_cancelled_and_a_viewer_cannot_cancel(operator: Actor) -> None:
    [message_id] = await send(operator, to('+79123456789'))
    viewer = await make_actor(Role.VIEWER, 'viewer@example.com')
    with pytest.raises(PermissionDenied):
        await history.cancel_message(viewer, message_id)
    await change_status([StatusChange(message_id, S.SENT)])
    with pytest.raises(ValidationError):
        await history.cancel_message(operator, message_id)
    assert (await Message.get(id=message_id)).status is S.SENT


def test_search_terms_and_status_choices() -> None:
    assert history.search_term(' +7 (912) 345-67 ') == '791234567'
    assert history.search_term('Ann@Example') == 'ann@example'
    assert history.status_choice('DELIVERED') is S.DELIVERED
    assert history.status_choice('OMITTED_OPTIONAL') is StatusView.OMITTED_OPTIONAL
    assert history.status_choice('nonsense') is None
