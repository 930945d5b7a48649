"""Which provider a channel uses (`integrations`), and a stored message as a provider sends it."""

from __future__ import annotations

from integrations.base import Identity, Outgoing, Provider, ProviderError
from integrations.meta import MetaProvider
from integrations.sandbox import SandboxProvider
from profiles.models import ClientProfile

from .models import Channel, Message, MessageType
from .models import Provider as ProviderKind
from .services.templates import template_header_file_fill

_CLASSES = {ProviderKind.META: MetaProvider, ProviderKind.SANDBOX: SandboxProvider}


def provider_for(channel: Channel) -> Provider:
    """The channel's provider, with the channel's credentials. `ProviderError` (permanent)
    for a provider the product cannot talk to yet."""
    cls = _CLASSES.get(channel.provider)
    if cls is None:
        raise ProviderError(f"Provider {channel.provider!r} is not supported yet", permanent=True)
    return cls(
        phone_number_id=channel.phone_number_id, access_token=channel.access_token, app_secret=channel.app_secret,
        api_version=channel.graph_api_version,
    )  # fmt: skip


def outgoing(message: Message, *, media_id: str = "") -> Outgoing:
    """The message as its provider sends it. `media_id`: the provider's id of the message's own
    file (`MediaFile`, uploaded by the delivery): a media message's, or a template header's
    attached file. A template naming a file with no id is refused for good (`ProviderError`)."""
    media = {**(message.media or {}), "id": media_id} if media_id and message.type != MessageType.TEMPLATE else message.media or {}
    template = (message.payload or {}).get("template") or {}
    if template.get("components"):
        try:
            template = {**template, "components": template_header_file_fill(template["components"], media_id=media_id)}
        except ValueError as exc:
            raise ProviderError(str(exc), permanent=True) from None
    return Outgoing(type=message.type, text=message.text, reply_to=message.context_wamid, media=media, template=template)


def recipient_of(profile: ClientProfile) -> Identity:
    """Where a reply to the customer goes: the provider picks its phone number when known,
    its business-scoped user id otherwise."""
    return Identity(phone=profile.wa_id, user_id=profile.user_id, parent_user_id=profile.parent_user_id, username=profile.username)
