"""Start-up checks: with DEBUG off, refuse to run a channel whose webhooks cannot be verified."""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from .models import Channel, Provider


@checks.register(checks.Tags.security, deploy=True)
def check_channel_secrets(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    try:
        missing = list(
            Channel.objects.filter(is_active=True, app_secret="")
            .exclude(provider=Provider.SANDBOX)
            .values_list("name", flat=True)
        )
    except DatabaseError:  # no table yet (before the first migrate)
        return []
    return [
        checks.Error(
            f"Active channel {name!r} has no app secret: its webhooks cannot be verified.",
            hint="Set the app secret in admin, or deactivate the channel.",
            id="whatsbot.E001",
        )
        for name in missing
    ]
