"""Sender names: operators request them, admins approve or reject them; only approved names send."""
from __future__ import annotations

from .channels import Channel
from .models import SenderName, SenderStatus


async def approved_names(channel: Channel) -> list[str]:
    """The approved sender names of a channel, sorted."""
    rows = await SenderName.filter(channel=channel, status=SenderStatus.APPROVED).order_by('name').values_list('name', flat=True)
    return list(rows)


async def is_approved(channel: Channel, name: str) -> bool:
    return await SenderName.filter(channel=channel, name=name, status=SenderStatus.APPROVED).exists()
