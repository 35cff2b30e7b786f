"""Tasks: a task's time zone, the notifications of a task found by an index, and SQLite's recipient search index
kept by the writers instead of triggers (an FTS5 insert through a trigger costs five times as much per row, and
the delete trigger ran a search per deleted message)."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

from domain.indexes import PresentIndex

_DROP_TRIGGERS = ('DROP TRIGGER message_search_insert', 'DROP TRIGGER message_search_delete')
_TRIGGERS = (
    '''CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_search (recipient, message_id) VALUES (new.recipient, new.id);
    END''',
    '''CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
        DELETE FROM message_search
        WHERE message_search MATCH '"' || replace(old.recipient, '"', '""') || '"' AND message_id = old.id;
    END''',
)


async def _run(schema_editor, statements: tuple[str, ...]) -> None:
    if schema_editor.DIALECT == 'sqlite':
        for statement in statements:
            await schema_editor.client.execute_query(statement)


async def _drop_triggers(apps, schema_editor) -> None:
    await _run(schema_editor, _DROP_TRIGGERS)


async def _restore_triggers(apps, schema_editor) -> None:
    await _run(schema_editor, _TRIGGERS)


class Migration(migrations.Migration):
    dependencies = [('models', '0004_history_search')]

    initial = False

    operations = [
        ops.AddIndex(model_name='Notification', index=PresentIndex(fields=['task_id'])),
        ops.AddField(model_name='Task', name='time_zone', field=fields.CharField(default='UTC', max_length=64)),
        ops.RunPython(_drop_triggers, _restore_triggers),
    ]
