"""The providers Herald ships, found by name: those that send messages (one per route), and those that check phones
(one, chosen on Settings → Channels & providers: domain.hlr). Each is built with its settings validated against its
schema (domain.provider_settings.validate_settings)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.hlr import HlrProvider
from domain.provider_settings import validate_settings
from domain.providers import Provider, ProviderConfigError, ReportSink

from .hlr_http import InfobipHlrProvider
from .hlr_offline import OfflineHlrProvider
from .http_json import HttpJsonProvider
from .kannel import KannelProvider
from .simulator import SimulatorProvider
from .smpp import SmppProvider
from .smtp import SmtpProvider
from .telegram import TelegramProvider
from .twilio import TwilioProvider
from .viber import ViberProvider
from .whatsapp import WhatsAppProvider

PROVIDERS: dict[str, type] = {cls.name: cls for cls in (
    SimulatorProvider,
    SmtpProvider,
    SmppProvider,
    TelegramProvider,
    WhatsAppProvider,
    ViberProvider,
    TwilioProvider,
    KannelProvider,
    HttpJsonProvider,
)}
HLR_PROVIDERS: dict[str, type] = {cls.name: cls for cls in (OfflineHlrProvider, InfobipHlrProvider)}


def provider_class(name: str) -> type:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ', '.join(sorted(PROVIDERS))
        raise ProviderConfigError(f'Unknown provider {name!r}; known providers: {known}') from None


def create_provider(name: str, route_name: str, raw_settings: Mapping[str, Any],
                    report_sink: ReportSink | None) -> Provider:
    cls = provider_class(name)
    return cls(route_name, validate_settings(cls, raw_settings), report_sink)


def create_hlr_provider(name: str, raw_settings: Mapping[str, Any]) -> HlrProvider:
    """The phone-check provider `name` with its settings validated; ProviderConfigError when either is wrong."""
    cls = HLR_PROVIDERS.get(name)
    if cls is None:
        raise ProviderConfigError(f'Unknown phone-check provider {name!r}; known: {", ".join(HLR_PROVIDERS)}')
    return cls(validate_settings(cls, raw_settings))
