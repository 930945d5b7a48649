# OpenAI shut stored prompts (`prompt.id`) down on 2026-11-30: a bot configuration answers with
# its instructions only. A configuration that had a stored prompt gets a new version that keeps
# the prompt's id, version and variables in its snapshot (`RETIRED_PROMPT_KEY`), so the admin is
# told which prompt to paste into the instructions (the history's earlier versions keep them too);
# then the fields go.

from django.db import migrations

# `conversations.services.botconfig.VERSIONED_FIELDS` and `RETIRED_PROMPT_KEY` as of this migration.
VERSIONED_FIELDS = (
    "name",
    "model",
    "instructions",
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
RETIRED_PROMPT_KEY = "retired_stored_prompt"


def stored_prompt_note(apps, schema_editor):
    BotConfig = apps.get_model("conversations", "BotConfig")
    BotConfigVersion = apps.get_model("conversations", "BotConfigVersion")
    for config in BotConfig.objects.exclude(prompt_id=""):
        retired = {"id": config.prompt_id, "version": config.prompt_version, "variables": config.prompt_variables or {}}
        config.version += 1
        config.updated_by = None
        config.save()
        data = {name: getattr(config, name) for name in VERSIONED_FIELDS}
        BotConfigVersion.objects.create(config=config, version=config.version, data={**data, RETIRED_PROMPT_KEY: retired}, created_by=None)


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0008_message_edits_and_deletions"),
    ]

    operations = [
        migrations.RunPython(stored_prompt_note, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="botconfig",
            name="prompt_id",
        ),
        migrations.RemoveField(
            model_name="botconfig",
            name="prompt_variables",
        ),
        migrations.RemoveField(
            model_name="botconfig",
            name="prompt_version",
        ),
    ]
