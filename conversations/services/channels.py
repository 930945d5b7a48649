"""Channels: the business numbers, including the one configured through the environment."""

from __future__ import annotations

import logging
import secrets
import threading
import time

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import translation
from django.utils.translation import gettext

from ..models import Channel, Provider

logger = logging.getLogger(__name__)

# The simulator's number.
SANDBOX_PHONE_ID = "sandbox"
SANDBOX_DISPLAY_NUMBER = "+00 000 0000"
# Channels change rarely (admin edits) and are read on every webhook POST: kept in memory briefly.
CHANNEL_CACHE_SECONDS = 10.0
_channel_cache: tuple[float, dict[str, Channel]] = (0.0, {})
_environment_synced = False
_channel_cache_lock = threading.Lock()


def channels_active() -> dict[str, Channel]:
    """The active channels by phone number id, as this process read them less than
    CHANNEL_CACHE_SECONDS ago (the environment's channel synced on the first read)."""
    global _channel_cache, _environment_synced
    loaded_at, channels = _channel_cache
    if time.monotonic() - loaded_at > CHANNEL_CACHE_SECONDS:
        # One thread of the process reloads; the others keep using what they have meanwhile
        # (on the very first load there is nothing yet: they wait for it).
        if not _channel_cache_lock.acquire(blocking=loaded_at == 0.0):
            return channels
        try:
            loaded_at, channels = _channel_cache
            if time.monotonic() - loaded_at > CHANNEL_CACHE_SECONDS:
                if not _environment_synced:
                    channel_sync_from_environment()
                    _environment_synced = True
                channels = {c.phone_number_id: c for c in Channel.objects.filter(is_active=True)}
                _channel_cache = (time.monotonic(), channels)
        finally:
            _channel_cache_lock.release()
    return channels


def channel_cache_clear() -> None:
    global _channel_cache, _environment_synced
    _channel_cache = (0.0, {})
    _environment_synced = False


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


def sandbox_channel_ensure() -> tuple[Channel, bool]:
    """The simulator's channel, with its own random app secret: its deliveries are signed and
    verified exactly like Meta's. Created by `manage.py bootstrap` (and by the simulator, if missing)."""
    # Named once, in the business's language (a stored name: staff may rename it in admin).
    with translation.override(settings.LANGUAGE_CODE):
        name = gettext("Simulator")
    channel, created = Channel.objects.get_or_create(
        phone_number_id=SANDBOX_PHONE_ID,
        defaults={
            "name": name, "provider": Provider.SANDBOX, "display_phone_number": SANDBOX_DISPLAY_NUMBER,
            "app_secret": secrets.token_urlsafe(32),
        },
    )  # fmt: skip
    if not channel.app_secret:  # erased in admin: the simulator could not sign
        channel.app_secret = secrets.token_urlsafe(32)
        channel.save(update_fields=["app_secret", "updated_at"])
        created = True
    if created:
        channel_cache_clear()  # the webhook keeps active channels in memory for a few seconds
    return channel, created


def channels_verify_tokens() -> list[str]:
    """Every verify token Meta may present when subscribing a webhook."""
    tokens = set(
        Channel.objects.filter(is_active=True).exclude(verify_token="").values_list("verify_token", flat=True)
    )
    if settings.WHATSAPP_VERIFY_TOKEN:
        tokens.add(settings.WHATSAPP_VERIFY_TOKEN)
    return sorted(tokens)
