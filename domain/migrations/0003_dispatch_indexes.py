from tortoise import fields, migrations
from tortoise.indexes import Index, PartialIndex
from tortoise.migrations import operations as ops

from domain.indexes import PresentIndex


class Migration(migrations.Migration):
    dependencies = [('models', '0002_delivery_engine')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Message',
            name=None,
            fields=['status', 'due_at'],
        ),
        ops.RemoveIndex(
            model_name='Message',
            name=None,
            fields=['task_id', 'status'],
        ),
        ops.RemoveIndex(
            model_name='Message',
            name=None,
            fields=['provider', 'provider_message_id'],
        ),
        ops.AddIndex(
            model_name='Message',
            index=PartialIndex(fields=['channel', 'due_at'], condition={'status': 'QUEUED'}),
        ),
        ops.AddIndex(
            model_name='Message',
            index=PartialIndex(fields=['status', 'due_at'], condition={'status': 'DELAYED'}),
        ),
        ops.AddIndex(
            model_name='Message',
            index=PresentIndex(fields=['task_id', 'status']),
        ),
        ops.AddIndex(
            model_name='Message',
            index=Index(fields=['notification_id', 'step_index']),
        ),
        ops.AddIndex(
            model_name='Message',
            index=PresentIndex(fields=['provider_message_id']),
        ),
        ops.AddIndex(
            model_name='Message',
            index=PresentIndex(fields=['lease_until']),
        ),
        ops.AddIndex(
            model_name='Message',
            index=PresentIndex(fields=['expires_at']),
        ),
        ops.AlterField(
            model_name='Notification',
            name='bulk_id',
            field=fields.CharField(max_length=64),
        ),
        ops.AlterField(
            model_name='Notification',
            name='created_at',
            field=fields.DatetimeField(auto_now=False, auto_now_add=True),
        ),
        ops.AlterField(
            model_name='Notification',
            name='flow_id',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AlterField(
            model_name='Notification',
            name='group_id',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddIndex(
            model_name='Notification',
            index=PresentIndex(fields=['group_id']),
        ),
        ops.AddIndex(
            model_name='Notification',
            index=PresentIndex(fields=['flow_id']),
        ),
    ]
