"""API: short links, email tracking, Idempotency-Key answers, bulk uploads over the API; per-key rate limits, and a
task's own short-link switch."""
from uuid import uuid4

from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.migrations import operations as ops

from domain.indexes import PresentIndex
from domain.models import BulkUploadStatus


class Migration(migrations.Migration):
    dependencies = [('models', '0005_tasks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BulkUpload',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('filename', fields.CharField(default='', max_length=255)),
                ('status', fields.CharEnumField(default=BulkUploadStatus.PROCESSING, description='PROCESSING: processing\nCOMPLETED: completed\nFAILED: failed', enum_type=BulkUploadStatus, max_length=16)),
                ('bulk_id', fields.CharField(max_length=64)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('total_rows', fields.IntField(default=0)),
                ('accepted_rows', fields.IntField(default=0)),
                ('rejected_rows', fields.IntField(default=0)),
                ('problems', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('error', fields.CharField(default='', max_length=500)),
                ('owner', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'bulk_uploads', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An Excel file of messages sent through `POST /api/v1/messages/bulk`, and what became of it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdempotentRequest',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=255)),
                ('method', fields.CharField(max_length=8)),
                ('path', fields.CharField(max_length=500)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('status_code', fields.IntField(null=True)),
                ('body', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'idempotent_requests', 'app': 'models', 'unique_together': (('owner', 'key'),), 'pk_attr': 'id', 'table_description': 'The first answer to a POST sent with an `Idempotency-Key` header, returned again when it is retried.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiKey',
            name='rate_limit_per_minute',
            field=fields.IntField(default=600),
        ),
        ops.AddIndex(
            model_name='ShortLink',
            index=PresentIndex(fields=['task_id']),
        ),
        ops.AddField(
            model_name='Task',
            name='use_short_links',
            field=fields.BooleanField(default=False),
        ),
    ]
