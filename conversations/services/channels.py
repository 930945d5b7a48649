"""Channels: the business numbers, including the one configured through the environment."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, transaction

from ..models import Channel, Provider

logger = logging.getLogger(__name__)


def channel_sync_from_environment() -> Channel | None:
    """Create or update the channel described by WHATSAPP_* variables (idempotent).

    A `.env`-only set-up therefore works with no visit to admin; more numbers are added there.
    """
    phone_id = settings.WHATSAPP_PHONE_ID
    if not phone_id:
        return None
    values = {
        "provider": Provider.META,
        "display_phone_number": settings.WHATSAPP_DISPLAY_NUMBER,
        "business_account_id": settings.WHATSAPP_ACCOUNT_ID,
        "access_token": settings.WHATSAPP_ACCESS_TOKEN,
        "app_secret": settings.WHATSAPP_APP_SECRET,
        "verify_token": settings.WHATSAPP_VERIFY_TOKEN,
        "api_version": settings.WHATSAPP_API_VERSION,
        "from_environment": True,
    }
    try:
        with transaction.atomic():
            channel, created = Channel.objects.select_for_update().get_or_create(
                phone_number_id=phone_id, defaults={"name": f"WhatsApp {settings.WHATSAPP_DISPLAY_NUMBER or phone_id}", **values}
            )
            if not created:
                changed = [k for k, v in values.items() if v and getattr(channel, k) != v]
                for k in changed:
                    setattr(channel, k, values[k])
                if changed:
                    channel.save(update_fields=[*changed, "updated_at"])
    except DatabaseError:
        logger.warning("could not sync the environment's WhatsApp channel (database not ready?)", exc_info=True)
        return None
    return channel


def channel_for_phone_number_id(phone_number_id: str) -> Channel | None:
    return Channel.objects.filter(phone_number_id=phone_number_id, is_active=True).first()


def channels_verify_tokens() -> list[str]:
    """Every verify token Meta may present when subscribing a webhook."""
    tokens = set(
        Channel.objects.filter(is_active=True).exclude(verify_token="").values_list("verify_token", flat=True)
    )
    if settings.WHATSAPP_VERIFY_TOKEN:
        tokens.add(settings.WHATSAPP_VERIFY_TOKEN)
    return sorted(tokens)
