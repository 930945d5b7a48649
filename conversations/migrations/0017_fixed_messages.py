"""The bot's fixed messages by kind and language in one `BotConfig.fixed_messages`, carrying
the single-language holding and hand-off texts (as the business language's) and the media
acknowledgements over, in every configuration and every saved version; and the OpenAI
conversation's watermark, set for the threads that have one to what they hold already."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

# The built-in texts of the time: a configuration holding one of them never chose a text of its own.
OLD_DEFAULTS = {
    "holding_message": "Grazie per il messaggio! In questo momento il nostro assistente non è disponibile: "
    "un collega ti risponderà al più presto.",
    "handoff_message": "Ti passo a un collega: ti risponderà qui al più presto.",
}
OLD_KINDS = {"holding_message": "holding", "handoff_message": "handoff"}


def fixed_messages_from(data: dict) -> dict:
    """`fixed_messages` from a configuration's (or snapshot's) old fields."""
    fixed = {}
    for key, kind in OLD_KINDS.items():
        text = (data.get(key) or "").strip()
        if text and text != OLD_DEFAULTS[key].strip():
            fixed[kind] = {settings.LANGUAGE_CODE: text}
    media = data.get("media_acknowledgements") or {}
    media = {k: v.strip() for k, v in media.items() if isinstance(v, str) and v.strip()} if isinstance(media, dict) else {}
    if media:
        fixed["media"] = media
    return fixed


def old_fields_from(fixed: dict) -> dict:
    return {
        **{key: ((fixed or {}).get(kind) or {}).get(settings.LANGUAGE_CODE) or OLD_DEFAULTS[key] for key, kind in OLD_KINDS.items()},
        "media_acknowledgements": (fixed or {}).get("media") or {},
    }


def forwards(apps, schema_editor):
    BotConfig, BotConfigVersion = apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")
    for config in BotConfig.objects.all():
        old = {key: getattr(config, key) for key in (*OLD_KINDS, "media_acknowledgements")}
        config.fixed_messages = fixed_messages_from(old)
        config.save(update_fields=["fixed_messages"])
    for version in BotConfigVersion.objects.all():
        data = dict(version.data)
        data["fixed_messages"] = fixed_messages_from(data)
        for key in (*OLD_KINDS, "media_acknowledgements"):
            data.pop(key, None)
        version.data = data
        version.save(update_fields=["data"])
    Conversation, Message = apps.get_model("conversations", "Conversation"), apps.get_model("conversations", "Message")
    newest = Message.objects.filter(conversation_id=OuterRef("pk")).order_by("-pk").values("pk")[:1]
    Conversation.objects.exclude(openai_conversation_id="").update(openai_synced_message_id=Subquery(newest))


def backwards(apps, schema_editor):
    BotConfig, BotConfigVersion = apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")
    for config in BotConfig.objects.all():
        for key, value in old_fields_from(config.fixed_messages).items():
            setattr(config, key, value)
        config.save(update_fields=[*OLD_KINDS, "media_acknowledgements"])
    for version in BotConfigVersion.objects.all():
        data = dict(version.data)
        data.update(old_fields_from(data.pop("fixed_messages", {})))
        version.data = data
        version.save(update_fields=["data"])


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0016_templates"),
    ]

    operations = [
        migrations.AddField(
            model_name="botconfig",
            name="fixed_messages",
            field=models.JSONField(blank=True, default=dict, verbose_name="fixed messages"),
        ),
        migrations.AddField(
            model_name="conversation",
            name="openai_synced_message_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(model_name="botconfig", name="handoff_message"),
        migrations.RemoveField(model_name="botconfig", name="holding_message"),
        migrations.RemoveField(model_name="botconfig", name="media_acknowledgements"),
    ]
