"""Start-up checks: with DEBUG off, refuse to run a channel whose webhooks cannot be verified;
say what became of OPENAI_PROMPT_ID and ACK_MEDIA_REPLY."""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from .models import Channel, Provider
from .services.botconfig import STORED_PROMPT_HINT


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


# A warning, not an error: an error would stop `migrate` (the release step) and every other
# command, and so the bot, over a prompt whose replacement is already running (the
# configuration's instructions); a warning is printed by each of them until the variable goes.
@checks.register()
def check_stored_prompt_retired(app_configs, **kwargs):
    if not settings.OPENAI_PROMPT_ID:
        return []
    return [
        checks.Warning(
            f"OPENAI_PROMPT_ID is set ({settings.OPENAI_PROMPT_ID}), but OpenAI shut stored prompts down on 2026-11-30: "
            "the bot answers with the instructions of its bot configuration, and this prompt is not used.",
            hint=f"{STORED_PROMPT_HINT} Then remove OPENAI_PROMPT_ID from the environment.",
            id="whatsbot.W001",
        )
    ]


@checks.register()
def check_media_acknowledgement_retired(app_configs, **kwargs):
    if not settings.ACK_MEDIA_REPLY:
        return []
    return [
        checks.Warning(
            "ACK_MEDIA_REPLY is set, but it is no longer read: the answer to media the bot cannot understand is written per "
            "bot configuration and per language (built-in Italian and English texts otherwise).",
            hint="Copy the text into the Media acknowledgement of its language in the bot configuration (admin, Bot "
            "configurations), and save. Then remove ACK_MEDIA_REPLY from the environment.",
            id="whatsbot.W002",
        )
    ]
