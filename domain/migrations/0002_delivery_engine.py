from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint


class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CallbackDelivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE)),
                ('url', fields.CharField(max_length=2000)),
                ('body', fields.TextField(unique=False)),
                ('attempts', fields.SmallIntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('failed', fields.BooleanField(default=False)),
                ('last_error', fields.CharField(default='', max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'callback_deliveries', 'app': 'models', 'indexes': [Index(fields=['delivered_at', 'failed', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': "An outbox row: one status change to POST to a client's callbackUrl, retried with backoff."},
            bases=['Model'],
        ),
        ops.RemoveIndex(
            model_name='Message',
            name=None,
            fields=['bulk_id'],
        ),
        ops.AddField(
            model_name='Message',
            name='claimed_by',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Message',
            name='lease_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddConstraint(
            model_name='Message',
            constraint=UniqueConstraint(fields=('bulk_id', 'recipient', 'channel'), name=None),
        ),
        ops.AddField(
            model_name='Notification',
            name='allowed_time_ranges',
            field=fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Notification',
            name='time_zone',
            field=fields.CharField(default='UTC', max_length=64),
        ),
    ]
