from nicegui.testing import User

from domain import auth
from domain.models import Role


async def test_first_run_leads_to_setup(user: User) -> None:
    await user.open('/templates')
    await user.should_see('Welcome to Herald')


async def test_db_fixture(db) -> None:
    created = await auth.create_user('a@example.com', 'long enough', Role.VIEWER)
    assert created.role is Role.VIEWER
