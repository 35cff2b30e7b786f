"""Messages over the API (twin-api.md): `POST/GET/DELETE /api/v1/messages`, `POST /api/v1/messages/bulk` and
`GET /api/v1/messages/bulk/{id}`."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import Field
from pydantic.alias_generators import to_camel

from domain import messages
from domain.auth import Actor, Scope
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import BulkUpload, TaskKind

from .auth import scoped
from .wire import ApiModel, ranges_from_wire, saved_upload, utc, wire_errors

router = APIRouter(tags=['Messages'])

Id = Annotated[str, Field(max_length=64)]
Text = Annotated[str, Field(max_length=2000)]
Scalar = str | int | float | bool | None


class DestinationIn(ApiModel):
    phone: Annotated[str, Field(max_length=32)] | int | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    client_id: Annotated[str, Field(max_length=200)] | None = None
    external_id: Annotated[str, Field(max_length=200)] | None = None
    messenger_user_id: Annotated[str, Field(max_length=200)] | None = None
    variables: dict[Annotated[str, Field(max_length=100)], Scalar] = Field(default_factory=dict, max_length=100)


class ChannelIn(ApiModel):
    """One channel's settings. `provider` names the provider route (Settings → Channels & providers) this channel's
    messages must go through, with no failover; without it they go through the channel's default route."""
    provider: Annotated[str, Field(max_length=100)] | None = None
    validity_period: int | None = Field(None, ge=1, le=2880)
    text: Annotated[str, Field(max_length=100_000)] | None = None
    html: Annotated[str, Field(max_length=500_000)] | None = None
    sender: Annotated[str, Field(max_length=64)] | None = Field(None, alias='from')
    required: bool = False
    subject: Text | None = None
    from_email: Annotated[str, Field(max_length=320)] | None = None
    from_name: Annotated[str, Field(max_length=200)] | None = None
    reply_to: Annotated[str, Field(max_length=320)] | None = None
    image_url: Text | None = None
    button_url: Text | None = None
    button_text: Annotated[str, Field(max_length=100)] | None = None
    template_name: Annotated[str, Field(max_length=512)] | None = None
    template_namespace: Annotated[str, Field(max_length=512)] | None = None
    template_data: dict[Annotated[str, Field(max_length=100)], Any] | None = Field(None, max_length=100)
    language: Annotated[str, Field(max_length=16)] | None = None
    media_url: Text | None = None
    document_filename: Annotated[str, Field(max_length=255)] | None = None

    def step(self, channel: Channel) -> dict[str, Any]:
        """The step as a template stores it (camelCase keys, 'from' for the sender, template parameters as text
        separated by |, in the order of their keys when they are numbers: WhatsApp's {{1}}, {{2}}…)."""
        values = self.model_dump(by_alias=True, exclude_none=True)
        if self.template_data:
            data = self.template_data
            items = sorted(data.items(), key=lambda item: int(item[0])) if all(map(str.isdigit, data)) else data.items()
            values['templateData'] = '|'.join(str(value) for _, value in items)
        return {'channel': channel.value, **values}


TimeOfDay = Annotated[str, Field(max_length=8)]


class MessageIn(ApiModel):
    template_id: Id | None = None
    group_id: Id | None = None
    callback_url: Text | None = None
    callback_data: Annotated[str, Field(max_length=4000)] | None = None
    use_short_links: bool = False
    validate_only: bool = Field(False, alias='validate')
    send_at: datetime | None = None
    allowed_time_ranges: list[tuple[TimeOfDay, TimeOfDay]] | None = Field(None, max_length=24)
    destinations: list[DestinationIn] = Field(min_length=1, max_length=10_000)
    channels: dict[Channel, ChannelIn] = Field(default_factory=dict, max_length=len(Channel))

    def request(self) -> SendRequest:
        return SendRequest(
            destinations=[Destination(phone=d.phone, email=d.email, external_id=d.external_id, client_id=d.client_id,
                                      messenger_user_id=d.messenger_user_id, variables=d.variables)
                          for d in self.destinations],
            steps=[settings_.step(channel) for channel, settings_ in self.channels.items()],
            template_id=self.template_id, group_id=self.group_id, callback_url=self.callback_url,
            callback_data=self.callback_data, use_short_links=self.use_short_links, send_at=utc(self.send_at),
            allowed_time_ranges=[list(r) for r in ranges_from_wire(self.allowed_time_ranges)]
            if self.allowed_time_ranges else None)


class SendIn(ApiModel):
    task_id: Id | None = None
    bulk_id: Id | None = None
    messages: list[MessageIn] = Field(min_length=1, max_length=100)


class ErrorOut(ApiModel):
    message: str
    fields: dict[str, str] | None = None


class SentOut(ApiModel):
    """A created message, or a destination (or a whole message of the batch) that was refused (`error`).
    With `validate`, each destination that could be sent gives an entry without `id`, `validated` true."""
    message_index: int
    destination_index: int | None = None
    id: str | None = None
    bulk_id: str
    group_id: str | None = None
    flow_id: str | None = None
    status: str | None = None
    channel: str | None = None
    validated: bool = False
    error: ErrorOut | None = None


def _entries(bulk_id: str, outcome: messages.Outcome, message: MessageIn) -> list[SentOut]:
    """The answer's entries for one message of the batch, by destination."""
    base = {'message_index': outcome.index, 'bulk_id': bulk_id, 'group_id': message.group_id}
    prefix = f'messages[{outcome.index}]'
    if outcome.errors:
        return [SentOut(**base, error=ErrorOut(message='The message cannot be sent.', fields={
            f'{prefix}.{name}': reason for name, reason in outcome.errors.items()}))]
    entries = [SentOut(**base | {'group_id': m.group_id}, destination_index=m.destination_index, id=m.id,
                       flow_id=m.flow_id, status=m.status.value, channel=m.channel.value) for m in outcome.created]
    refused = {r.index for r in outcome.rejected}
    if outcome.validate:
        entries += [SentOut(**base, destination_index=index, validated=True)
                    for index in range(len(message.destinations)) if index not in refused]
    for r in outcome.rejected:
        field_name = f'{prefix}.destinations[{r.index}].{to_camel(r.field)}'
        entries.append(SentOut(**base, destination_index=r.index, error=ErrorOut(
            message=r.reason, fields={field_name: r.reason} if r.field else None)))
    return sorted(entries, key=lambda e: e.destination_index if e.destination_index is not None else -1)


@router.post('/messages', response_model=list[SentOut])
async def send_messages(body: SendIn, actor: Actor = Depends(scoped(Scope.MESSAGES_SEND))) -> list[SentOut]:
    with wire_errors(_message_field):
        bulk_id, outcomes = await messages.send_batch(
            actor, [(m.request(), m.validate_only) for m in body.messages], body.bulk_id, body.task_id)
    return [entry for outcome, message in zip(outcomes, body.messages) for entry in _entries(bulk_id, outcome, message)]


def _message_field(key: str) -> str:
    """'0.channels.sms.from' → 'messages[0].channels.sms.from'."""
    index, _, rest = key.partition('.')
    return f'messages[{index}].{rest}' if index.isdigit() else key


class DestinationOut(ApiModel):
    phone: str | None = None
    email: str | None = None
    client_id: str | None = None
    external_id: str | None = None
    messenger_user_id: str | None = None


class TracksOut(ApiModel):
    short_link_clicks: int
    email_opens: int
    email_clicks: int


class MessageOut(ApiModel):
    id: str
    bulk_id: str
    group_id: str | None = None
    flow_id: str | None = None
    task_id: str | None = None
    status: str
    status_code: int
    status_description: str
    part_count: int
    network: str | None = None
    channel: str
    template_id: str | None = None
    template_name: str | None = None
    destination: DestinationOut
    message: dict[str, Any]
    template_variables: dict[str, Any]
    tracks: TracksOut
    created_at: str
    sent_at: str | None = None
    delivered_at: str | None = None
    send_at: str | None = None
    expired_at: str | None = None


class MessagesOut(ApiModel):
    count: int = Field(description=f'Matching messages, counted up to {messages.COUNT_CAP + 1}.')
    items: list[MessageOut]


IDS = messages.MAX_IDS * 65  # characters of a comma-separated id list


def _ids(alias: str | None = None) -> Any:
    return Query(None, alias=alias, max_length=IDS, description=f'Comma-separated, at most {messages.MAX_IDS}.')


def _filters(status: str | None = Query(None, max_length=16), channel: str | None = Query(None, max_length=16),
             id: str | None = _ids(), bulk_id: str | None = _ids('bulkId'), group_id: str | None = _ids('groupId'),
             flow_id: str | None = _ids('flowId'), task_id: str | None = _ids('taskId'),
             created_from: datetime | None = Query(None, alias='from'),
             created_to: datetime | None = Query(None, alias='to')) -> messages.MessageFilter:
    return messages.MessageFilter(
        status=messages.parse_status(status), channel=messages.parse_channel(channel),
        ids=messages.split_ids(id, 'id'), bulk_ids=messages.split_ids(bulk_id, 'bulkId'),
        group_ids=messages.split_ids(group_id, 'groupId'), flow_ids=messages.split_ids(flow_id, 'flowId'),
        task_ids=messages.split_ids(task_id, 'taskId'), created_from=utc(created_from), created_to=utc(created_to))


@router.get('/messages', response_model=MessagesOut)
async def list_messages(filters: messages.MessageFilter = Depends(_filters),
                        limit: int = Query(20, ge=1, le=1000), offset: int = Query(0, ge=0, le=10_000_000),
                        sort: str = Query('-createdAt', max_length=20),
                        actor: Actor = Depends(scoped(Scope.MESSAGES_READ))) -> MessagesOut:
    order, descending = messages.parse_sort(sort)
    count, items = await messages.list_messages(actor, filters, offset, limit, order, descending)
    return MessagesOut(count=count, items=[MessageOut.model_validate(item) for item in items])


class CanceledOut(ApiModel):
    canceled: int


@router.delete('/messages', response_model=CanceledOut)
async def cancel_messages(id: str | None = _ids(), bulk_id: str | None = _ids('bulkId'),
                          group_id: str | None = _ids('groupId'), flow_id: str | None = _ids('flowId'),
                          actor: Actor = Depends(scoped(Scope.MESSAGES_SEND))) -> CanceledOut:
    filters = messages.MessageFilter(
        ids=messages.split_ids(id, 'id'), bulk_ids=messages.split_ids(bulk_id, 'bulkId'),
        group_ids=messages.split_ids(group_id, 'groupId'), flow_ids=messages.split_ids(flow_id, 'flowId'))
    return CanceledOut(canceled=await messages.cancel_messages(actor, filters))


class ProblemOut(ApiModel):
    row: int
    column: str
    reason: str


class BulkOut(ApiModel):
    id: str
    status: Literal['processing', 'completed', 'failed']
    bulk_id: str | None = None
    task_id: str | None = None
    total_rows: int
    accepted_rows: int
    rejected_rows: int
    problems: list[ProblemOut]
    error: str | None = None


def _bulk(upload: BulkUpload) -> BulkOut:
    return BulkOut(id=str(upload.id), status=upload.status.value, bulk_id=upload.bulk_id or None,
                   task_id=str(upload.task_id) if upload.task_id else None, total_rows=upload.total_rows,
                   accepted_rows=upload.accepted_rows, rejected_rows=upload.rejected_rows,
                   problems=[ProblemOut.model_validate(p) for p in upload.problems], error=upload.error or None)


_FORMATS = {'full': TaskKind.FULL, 'universal': TaskKind.UNIVERSAL}


@router.post('/messages/bulk', response_model=BulkOut)
async def upload_messages(messages_file: UploadFile = File(alias='messages', description='An .xlsx file.'),
                          run_async: bool = Form(False, alias='async'),
                          template_id: str | None = Form(None, alias='templateId', max_length=64),
                          file_format: Literal['full', 'universal'] | None = Form(
                              None, alias='format', description='"universal" when a templateId is given, else "full".'),
                          actor: Actor = Depends(scoped(Scope.MESSAGES_SEND))) -> BulkOut:
    kind = _FORMATS[file_format or ('universal' if template_id else 'full')]
    path = await saved_upload(messages_file)
    upload = await messages.upload_file(actor, path, messages_file.filename or 'messages.xlsx', kind, template_id,
                                        wait=not run_async)
    return _bulk(upload)


@router.get('/messages/bulk/{upload_id}', response_model=BulkOut)
async def get_upload(upload_id: str, actor: Actor = Depends(scoped(Scope.MESSAGES_READ))) -> BulkOut:
    return _bulk(await messages.get_upload(actor, upload_id))

