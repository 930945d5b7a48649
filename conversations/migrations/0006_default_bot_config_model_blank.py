# The default bot configuration used to be created with `OPENAI_MODEL` copied into it, so a
# later change of `OPENAI_MODEL` in `.env` had no effect. A blank model means "OPENAI_MODEL"
# (new defaults are created blank): blank it in a default that was created automatically
# and whose model nobody ever changed, as a new version, the way `bot_config_save` does.

from django.db import migrations

# `conversations.services.botconfig.VERSIONED_FIELDS` as of this migration.
VERSIONED_FIELDS = (
    "name",
    "model",
    "instructions",
    "prompt_id",
    "prompt_version",
    "prompt_variables",
    "vector_store_ids",
    "fields_to_collect",
    "extra_fields",
    "order_number_pattern",
    "temperature",
    "max_output_tokens",
    "holding_message",
    "handoff_message",
    "is_active",
)


def default_model_blank(apps, schema_editor):
    BotConfig = apps.get_model("conversations", "BotConfig")
    BotConfigVersion = apps.get_model("conversations", "BotConfigVersion")
    for config in BotConfig.objects.filter(channel__isnull=True).exclude(model=""):
        versions = list(BotConfigVersion.objects.filter(config=config).order_by("version"))
        if not versions or versions[0].created_by_id is not None:
            continue  # created by a person (or around the service): the model is their choice
        if any(version.data.get("model") != config.model for version in versions):
            continue  # the model was changed at some point, even if changed back
        config.model = ""
        config.version += 1
        config.updated_by = None
        config.save()
        BotConfigVersion.objects.create(
            config=config, version=config.version, data={name: getattr(config, name) for name in VERSIONED_FIELDS}, created_by=None
        )


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0005_status_unapplied_recent_idx"),
    ]

    operations = [
        migrations.RunPython(default_model_blank, migrations.RunPython.noop),
    ]
