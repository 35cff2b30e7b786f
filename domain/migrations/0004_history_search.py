"""The history's indexes: search by part of a recipient (a trigram index: FTS5 on SQLite, pg_trgm on PostgreSQL),
status with channel, sorting by sent and delivered times, the "Omitted, optional" view, and
the short links of a message (for the report)."""
from tortoise import migrations
from tortoise.indexes import Index, PartialIndex
from tortoise.migrations import operations as ops

from domain.indexes import PresentIndex

# Statements one by one: triggers hold semicolons, which the schema editor would split on.
_SQLITE = (
    "CREATE VIRTUAL TABLE message_search USING fts5(recipient, message_id UNINDEXED, tokenize='trigram')",
    'INSERT INTO message_search (recipient, message_id) SELECT recipient, id FROM messages',
    '''CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_search (recipient, message_id) VALUES (new.recipient, new.id);
    END''',
    '''CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
        DELETE FROM message_search
        WHERE message_search MATCH '"' || replace(old.recipient, '"', '""') || '"' AND message_id = old.id;
    END''',
)
_POSTGRES = (
    'CREATE EXTENSION IF NOT EXISTS pg_trgm',
    'CREATE INDEX messages_recipient_trigrams ON messages USING gin (recipient gin_trgm_ops)',
)
_DROP_SQLITE = ('DROP TRIGGER message_search_insert', 'DROP TRIGGER message_search_delete', 'DROP TABLE message_search')
_DROP_POSTGRES = ('DROP INDEX messages_recipient_trigrams',)


async def _run(schema_editor, statements: tuple[str, ...]) -> None:
    for statement in statements:
        await schema_editor.client.execute_query(statement)


async def _create(apps, schema_editor) -> None:
    await _run(schema_editor, _SQLITE if schema_editor.DIALECT == 'sqlite' else _POSTGRES)


async def _drop(apps, schema_editor) -> None:
    await _run(schema_editor, _DROP_SQLITE if schema_editor.DIALECT == 'sqlite' else _DROP_POSTGRES)


class Migration(migrations.Migration):
    dependencies = [('models', '0003_dispatch_indexes')]

    initial = False

    operations = [
        ops.RemoveIndex(model_name='Message', name=None, fields=['recipient', 'created_at']),  # the trigram index serves
        ops.RunPython(_create, _drop),
        ops.AddIndex(model_name='Message', index=Index(fields=['status', 'channel', 'created_at'])),
        ops.AddIndex(model_name='Message', index=Index(fields=['sent_at', 'created_at'])),
        ops.AddIndex(model_name='Message', index=Index(fields=['delivered_at', 'created_at'])),
        ops.AddIndex(model_name='Message', index=PartialIndex(
            fields=['created_at'], condition={'handed_over': True}, name='idx_messages_handed_over')),
        ops.AddIndex(model_name='ShortLink', index=PresentIndex(fields=['message_id'])),
    ]
