"""Provider routes get a backup route (failover); a message may be pinned to one route (a test message); settings
changed in the dashboard (the phone-check provider) are kept in app_settings."""
from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0006_api')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AppSetting',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ('value', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'app_settings', 'app': 'models', 'pk_attr': 'key', 'table_description': "A setting changed in the dashboard and kept in the database, by key (e.g. 'hlr': the phone-check provider)."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Message',
            name='pinned_route',
            field=fields.ForeignKeyField('models.ProviderRoute', source_field='pinned_route_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='ProviderRoute',
            name='backup',
            field=fields.ForeignKeyField('models.ProviderRoute', source_field='backup_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL),
        ),
    ]
