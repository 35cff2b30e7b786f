"""The data model of DESIGN.md. Times are stored in UTC."""
from __future__ import annotations

import uuid
from enum import Enum

from tortoise import fields
from tortoise.indexes import Index, PartialIndex
from tortoise.models import Model

from .channels import Channel
from .indexes import PresentIndex
from .statuses import MessageStatus


class Role(str, Enum):
    ADMIN = 'admin'
    OPERATOR = 'operator'
    VIEWER = 'viewer'


class SenderStatus(str, Enum):
    REQUESTED = 'requested'
    APPROVED = 'approved'
    REJECTED = 'rejected'


class TimeZoneMode(str, Enum):
    FIXED = 'fixed'
    RECIPIENT = 'recipient'


class TaskKind(str, Enum):
    SMS = 'sms'
    SPONSORED = 'sponsored'
    CHAT_START = 'chat_start'
    WHATSAPP_CHAT_START = 'whatsapp_chat_start'
    UNIVERSAL = 'universal'
    FULL = 'full'


class TaskStatus(str, Enum):
    CREATED = 'created'
    RUNNING = 'running'
    PAUSED = 'paused'
    COMPLETED = 'completed'
    CANCELED = 'canceled'
    FAILED = 'failed'


class SuppressionKind(str, Enum):
    PHONE = 'phone'
    EMAIL = 'email'


class User(Model):
    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200, default='')
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16, default=Role.OPERATOR)
    is_active = fields.BooleanField(default=True)
    failed_logins = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    session_version = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = 'users'


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes = fields.JSONField(default=list)
    rate_limit_per_minute = fields.IntField(default=600)
    created_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = 'api_keys'


class AuditEvent(Model):
    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    actor_label = fields.CharField(max_length=320)
    action = fields.CharField(max_length=32)
    entity_type = fields.CharField(max_length=32)
    entity_id = fields.CharField(max_length=64)
    summary = fields.CharField(max_length=500, default='')
    changes = fields.JSONField(default=dict)

    class Meta:
        table = 'audit_events'
        indexes = (Index(fields=('entity_type', 'entity_id')),)


class SenderName(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    channel = fields.CharEnumField(Channel, max_length=16)
    status = fields.CharEnumField(SenderStatus, max_length=16, default=SenderStatus.REQUESTED)
    comment = fields.TextField(default='')
    requested_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    decided_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = 'sender_names'
        unique_together = (('name', 'channel'),)


class Template(Model):
    """A notification template. `steps` is the ordered cascade, one dict per channel step:
    {channel, route, validityPeriod (minutes), required, and the channel's fields (domain.channels)}."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    name = fields.CharField(max_length=200, db_index=True)
    allowed_time_ranges = fields.JSONField(default=list)
    time_zone_mode = fields.CharEnumField(TimeZoneMode, max_length=16, default=TimeZoneMode.FIXED)
    time_zone = fields.CharField(max_length=64, default='UTC')
    steps = fields.JSONField(default=list)
    use_short_links = fields.BooleanField(default=False)
    created_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = 'templates'


class ProviderRoute(Model):
    """Which provider serves a channel, with its settings and limits (Settings → Channels & providers)."""
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    provider = fields.CharField(max_length=50)
    settings = fields.JSONField(default=dict)
    concurrency = fields.IntField(default=10)
    rate_per_second = fields.FloatField(default=100.0)
    is_default = fields.BooleanField(default=False)
    enabled = fields.BooleanField(default=True)
    backup = fields.ForeignKeyField('models.ProviderRoute', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = 'provider_routes'


class Tariff(Model):
    """Price of one message part on a channel to a country (ISO 3166 alpha-2, or '*' for any other)."""
    id = fields.IntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    country = fields.CharField(max_length=2)
    price_per_part = fields.DecimalField(max_digits=12, decimal_places=4)
    currency = fields.CharField(max_length=3, default='EUR')
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = 'tariffs'
        unique_together = (('channel', 'country'),)


class Task(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    name = fields.CharField(max_length=200, db_index=True)
    kind = fields.CharEnumField(TaskKind, max_length=32)
    status = fields.CharEnumField(TaskStatus, max_length=16, default=TaskStatus.CREATED, db_index=True)
    template = fields.ForeignKeyField('models.Template', null=True, on_delete=fields.SET_NULL, related_name=False)
    source_file = fields.CharField(max_length=500, default='')
    source_filename = fields.CharField(max_length=255, default='')
    allowed_time_ranges = fields.JSONField(default=list)
    time_zone = fields.CharField(max_length=64, default='UTC')
    use_short_links = fields.BooleanField(default=False)
    total_count = fields.IntField(default=0)
    processed_count = fields.IntField(default=0)
    in_progress_count = fields.IntField(default=0)
    delivered_count = fields.IntField(default=0)
    failed_count = fields.IntField(default=0)
    error_report = fields.CharField(max_length=500, default='')
    created_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = 'tasks'


class Notification(Model):
    """One recipient and one cascade of channel steps."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    bulk_id = fields.CharField(max_length=64)  # messages' (bulk_id, recipient, channel) index finds a bulk
    group_id = fields.CharField(max_length=64, null=True)
    flow_id = fields.CharField(max_length=64, null=True)
    task = fields.ForeignKeyField('models.Task', null=True, on_delete=fields.SET_NULL, related_name=False)
    template = fields.ForeignKeyField('models.Template', null=True, on_delete=fields.SET_NULL, related_name=False)
    external_id = fields.CharField(max_length=200, null=True)
    client_id = fields.CharField(max_length=200, null=True)
    messenger_user_id = fields.CharField(max_length=200, null=True)
    phone = fields.CharField(max_length=32, null=True)
    email = fields.CharField(max_length=320, null=True)
    variables = fields.JSONField(default=dict)
    callback_url = fields.CharField(max_length=2000, null=True)
    callback_data = fields.TextField(null=True)
    use_short_links = fields.BooleanField(default=False)
    send_at = fields.DatetimeField(null=True)
    allowed_time_ranges = fields.JSONField(default=list)
    time_zone = fields.CharField(max_length=64, default='UTC')
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = 'notifications'
        indexes = (PresentIndex(fields=('group_id',)), PresentIndex(fields=('flow_id',)),
                   PresentIndex(fields=('task_id',)))


class Message(Model):
    """One channel step of a notification: what the history page lists."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    notification = fields.ForeignKeyField('models.Notification', on_delete=fields.CASCADE, related_name='messages')
    task = fields.ForeignKeyField('models.Task', null=True, on_delete=fields.SET_NULL, related_name=False)
    bulk_id = fields.CharField(max_length=64)
    step_index = fields.SmallIntField(default=0)
    channel = fields.CharEnumField(Channel, max_length=16)
    route = fields.ForeignKeyField('models.ProviderRoute', null=True, on_delete=fields.SET_NULL, related_name=False)
    pinned_route = fields.ForeignKeyField('models.ProviderRoute', null=True, on_delete=fields.SET_NULL,
                                          related_name=False)  # sent through this route only (a test message)
    provider = fields.CharField(max_length=50, default='')
    sender = fields.CharField(max_length=320, default='')
    recipient = fields.CharField(max_length=320)
    subject = fields.CharField(max_length=998, default='')
    text = fields.TextField(default='')
    html = fields.TextField(default='')
    params = fields.JSONField(default=dict)
    parts = fields.SmallIntField(default=0)
    cost = fields.DecimalField(max_digits=12, decimal_places=4, default=0)
    currency = fields.CharField(max_length=3, default='')
    status = fields.CharEnumField(MessageStatus, max_length=16, default=MessageStatus.CREATED)
    status_description = fields.CharField(max_length=500, default='')
    provider_message_id = fields.CharField(max_length=200, null=True)
    network = fields.CharField(max_length=200, default='')
    attempt = fields.SmallIntField(default=0)
    required = fields.BooleanField(default=False)
    handed_over = fields.BooleanField(default=False)
    in_doubt = fields.BooleanField(default=False)
    validity_minutes = fields.IntField(null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    due_at = fields.DatetimeField(null=True)
    send_started_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)
    short_link_clicks = fields.IntField(default=0)
    email_opens = fields.IntField(default=0)
    email_clicks = fields.IntField(default=0)

    class Meta:
        table = 'messages'
        indexes = (
            Index(fields=('created_at',)),
            Index(fields=('status', 'created_at')),
            Index(fields=('channel', 'created_at')),
            Index(fields=('status', 'channel', 'created_at')),
            Index(fields=('sent_at', 'created_at')),  # the history's sorting by these, within a period
            Index(fields=('delivered_at', 'created_at')),
            PartialIndex(fields=('created_at',), condition={'handed_over': True},  # "Omitted, optional"
                         name='idx_messages_handed_over'),
            PartialIndex(fields=('channel', 'due_at'), condition={'status': 'QUEUED'}),  # what to claim next
            PartialIndex(fields=('status', 'due_at'), condition={'status': 'DELAYED'}),  # to release as windows open
            PresentIndex(fields=('task_id', 'status')),
            Index(fields=('notification_id', 'step_index')),
            PresentIndex(fields=('provider_message_id',)),
            PresentIndex(fields=('lease_until',)),  # set only while claimed: finds the ones left in doubt
            PresentIndex(fields=('expires_at',)),  # set only while SENT with a validity period
        )
        unique_together = (('bulk_id', 'recipient', 'channel'),)


class MessageEvent(Model):
    """One status change of a message: the detail dialog's timeline."""
    id = fields.BigIntField(primary_key=True)
    message = fields.ForeignKeyField('models.Message', on_delete=fields.CASCADE, related_name='events')
    at = fields.DatetimeField(auto_now_add=True)
    status = fields.CharEnumField(MessageStatus, max_length=16)
    description = fields.CharField(max_length=500, default='')
    details = fields.JSONField(default=dict)

    class Meta:
        table = 'message_events'
        indexes = (Index(fields=('message_id', 'at')),)


class CallbackDelivery(Model):
    """An outbox row: one status change to POST to a client's callbackUrl, retried with backoff."""
    id = fields.BigIntField(primary_key=True)
    message = fields.ForeignKeyField('models.Message', on_delete=fields.CASCADE, related_name=False)
    url = fields.CharField(max_length=2000)
    body = fields.TextField()
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)
    failed = fields.BooleanField(default=False)
    last_error = fields.CharField(max_length=500, default='')
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = 'callback_deliveries'
        indexes = (Index(fields=('delivered_at', 'failed', 'next_attempt_at')),)


class HlrCheck(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    check_id = fields.CharField(max_length=64, db_index=True)
    phone = fields.CharField(max_length=32, db_index=True)
    status = fields.CharField(max_length=32)
    status_code = fields.IntField(default=0)
    number_type = fields.CharField(max_length=32, default='')
    network = fields.CharField(max_length=200, default='')
    region = fields.CharField(max_length=200, default='')
    country = fields.CharField(max_length=2, default='')
    time_zone = fields.CharField(max_length=64, default='')
    ported = fields.BooleanField(null=True)
    roaming = fields.BooleanField(null=True)
    cost = fields.DecimalField(max_digits=12, decimal_places=4, default=0)
    currency = fields.CharField(max_length=3, default='')
    provider = fields.CharField(max_length=50, default='')
    created_by = fields.ForeignKeyField('models.User', null=True, on_delete=fields.SET_NULL, related_name=False)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = 'hlr_checks'


class ShortLink(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    target = fields.CharField(max_length=2000)
    message = fields.ForeignKeyField('models.Message', null=True, on_delete=fields.SET_NULL, related_name=False)
    task = fields.ForeignKeyField('models.Task', null=True, on_delete=fields.SET_NULL, related_name=False)
    clicks = fields.IntField(default=0)
    first_visit_at = fields.DatetimeField(null=True)
    last_visit_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = 'short_links'
        indexes = (PresentIndex(fields=('message_id',)),  # the history report's short links of each message
                   PresentIndex(fields=('task_id',)))


class Suppression(Model):
    """An opted-out phone or email: a message to it ends SKIPPED."""
    id = fields.IntField(primary_key=True)
    kind = fields.CharEnumField(SuppressionKind, max_length=8)
    value = fields.CharField(max_length=320)
    reason = fields.CharField(max_length=500, default='')
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = 'suppressions'
        unique_together = (('kind', 'value'),)


class IdempotentRequest(Model):
    """The first answer to a POST sent with an `Idempotency-Key` header, returned again when it is retried."""
    id = fields.BigIntField(primary_key=True)
    owner = fields.CharField(max_length=64)  # whose key: 'key:<api key id>' or 'user:<user id>'
    key = fields.CharField(max_length=255)
    method = fields.CharField(max_length=8)
    path = fields.CharField(max_length=500)
    fingerprint = fields.CharField(max_length=64)  # SHA-256 of the body: the same key with another body is refused
    status_code = fields.IntField(null=True)  # None while the first request is still being answered
    body = fields.TextField(default='')
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = 'idempotent_requests'
        unique_together = (('owner', 'key'),)


class BulkUploadStatus(str, Enum):
    PROCESSING = 'processing'
    COMPLETED = 'completed'
    FAILED = 'failed'


class BulkUpload(Model):
    """An Excel file of messages sent through `POST /api/v1/messages/bulk`, and what became of it."""
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    filename = fields.CharField(max_length=255, default='')
    status = fields.CharEnumField(BulkUploadStatus, max_length=16, default=BulkUploadStatus.PROCESSING)
    bulk_id = fields.CharField(max_length=64)
    task = fields.ForeignKeyField('models.Task', null=True, on_delete=fields.SET_NULL, related_name=False)
    total_rows = fields.IntField(default=0)
    accepted_rows = fields.IntField(default=0)
    rejected_rows = fields.IntField(default=0)
    problems = fields.JSONField(default=list)  # [{row, column, reason}], the first ones
    error = fields.CharField(max_length=500, default='')
    owner = fields.CharField(max_length=64)  # as IdempotentRequest.owner: only its owner reads it
    created_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = 'bulk_uploads'


class AppSetting(Model):
    """A setting changed in the dashboard and kept in the database, by key (e.g. 'hlr': the phone-check provider)."""
    key = fields.CharField(max_length=100, primary_key=True)
    value = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = 'app_settings'
