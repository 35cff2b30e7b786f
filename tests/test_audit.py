"""The audit log page: what it lists, how it filters and pages, and who may see it."""
import pytest
from helpers import eventually, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import audit, senders, tariffs, users
from domain.auth import SYSTEM, Actor
from domain.channels import Channel
from domain.models import AuditEvent, Role
from domain.models import User as UserModel
from ui.audit_page import format_changes


def test_format_changes() -> None:
    assert format_changes({'role': ['operator', 'viewer'], 'comment': ['', 'ok'], 'name': [None, 'Ann'],
                           'email': ['ann@example.com', None], 'note': 'plain'}) == (
        'role: operator → viewer\ncomment: — → ok\nname: Ann\nemail: ann@example.com\nnote: plain')
    assert format_changes({}) == ''


async def test_admin_sees_every_change_newest_first(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    admin = Actor.of(await UserModel.get(email='admin@example.com'))
    ann = await users.add_user(admin, 'ann@example.com', 'secret password', Role.OPERATOR)
    await users.change_role(admin, ann.id, Role.VIEWER)
    await tariffs.set_tariff(admin, Channel.SMS, 'RU', '2.15', 'RUB')
    await user.open('/settings/audit')
    rows = table_rows(user)
    assert [(r['actor'], r['action'], r['entity_type']) for r in rows] == [
        ('admin@example.com', 'create', 'tariff'), ('admin@example.com', 'update', 'user'),
        ('admin@example.com', 'create', 'user')]
    assert rows[1]['entity_id'] == str(ann.id)
    assert rows[1]['summary'] == 'Changed the role of ann@example.com to viewer'
    assert rows[1]['changes'] == 'role: operator → viewer'
    assert all('secret' not in str(row) for row in rows)
    assert rows[0]['at'].startswith(str((await AuditEvent.get(id=rows[0]['id'])).at.date()))


async def test_filter_by_entity_type_and_server_paging(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    for i in range(23):
        await senders.request_sender(SYSTEM, f'Shop{i:02}', Channel.SMS)
    await audit.record(SYSTEM, 'update', 'tariff', 1, 'A tariff')
    await user.open('/settings/audit?entity_type=tariff')
    assert [r['summary'] for r in table_rows(user)] == ['A tariff']
    select = next(iter(user.find(kind=ui.select, content='Entity type').elements))
    assert select.options == {'': 'Everything', 'sender_name': 'Sender name', 'tariff': 'Tariff'}
    select.value = 'sender_name'
    await eventually(lambda: len(table_rows(user)) == 20)
    table = next(iter(user.find(ui.table).elements))
    assert table.pagination['rowsNumber'] == 23
    assert table_rows(user)[0]['summary'] == 'Requested sender name "Shop22" for SMS'
    user.find(ui.table).trigger('request', {'pagination': {**table.pagination, 'page': 2}})
    await eventually(lambda: [r['summary'] for r in table_rows(user)] == [
        f'Requested sender name "Shop0{i}" for SMS' for i in (2, 1, 0)])


@pytest.mark.parametrize('role', [Role.OPERATOR, Role.VIEWER])
async def test_only_admins_see_the_audit_log(user: User, role: Role) -> None:
    await sign_in_as(user, role)
    await audit.record(SYSTEM, 'update', 'tariff', 1, 'A tariff')
    await user.open('/settings/audit')
    await user.should_see(f'Your role ({role.value}) has no access to this page.')
    with pytest.raises(AssertionError):
        user.find(ui.table)
