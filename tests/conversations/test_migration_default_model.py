"""Migration conversations/0006: a default bot configuration created automatically, whose
model nobody changed, is blanked (so `OPENAI_MODEL` counts again) as a new version."""

import pytest

from .factories import PHONE_NUMBER_ID, UserFactory
from .migrations import migrated_to, migrated_to_latest

pytestmark = pytest.mark.django_db

BEFORE = ("conversations", "0005_status_unapplied_recent_idx")
# The default configuration's fields as the old code created it (prompt fields and all).
DEFAULT_AS_CREATED = {"name": "Default", "instructions": "Sei un agente WhatsApp.", "prompt_id": "", "fields_to_collect": ["email"]}


@pytest.fixture
def old():
    """The models as of migration 0005, the schema with them; `migrate()` runs 0006 onwards."""
    apps = migrated_to(*BEFORE)
    return apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")


def save(BotConfig, BotConfigVersion, config, *, user=None):
    """`bot_config_save` as it was: the next version, and its snapshot."""
    config.version = (config.version or 0) + 1 if config.pk else 1
    config.updated_by_id = user.pk if user else None
    config.save()
    data = {f.name: getattr(config, f.name) for f in BotConfig._meta.concrete_fields if f.name not in ("id", "channel", "version",
            "updated_at", "updated_by")}  # fmt: skip
    BotConfigVersion.objects.create(config=config, version=config.version, data=data, created_by_id=config.updated_by_id)
    return config


def default_as_created_before(old, model: str = "gpt-4.1"):
    BotConfig, BotConfigVersion = old
    return save(BotConfig, BotConfigVersion, BotConfig(**DEFAULT_AS_CREATED, model=model))


def old_channel(BotConfig):
    """A channel as of then (today's model may have columns that schema lacks)."""
    return BotConfig._meta.get_field("channel").related_model.objects.create(name="Test number", phone_number_id=PHONE_NUMBER_ID)


def migrate():
    apps = migrated_to_latest()
    return apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")


def test_an_automatic_default_with_its_model_never_changed_is_blanked_as_a_new_version(old):
    config = default_as_created_before(old)
    config.instructions = "Rispondi in breve."  # a staff edit that left the model alone
    save(*old, config, user=UserFactory())

    BotConfig, BotConfigVersion = migrate()

    config = BotConfig.objects.get(pk=config.pk)
    assert (config.model, config.version, config.updated_by) == ("", 3, None)
    latest = BotConfigVersion.objects.get(config=config, version=3)
    assert latest.created_by is None
    assert latest.data["model"] == "" and latest.data["instructions"] == "Rispondi in breve."
    assert BotConfigVersion.objects.get(config=config, version=1).data["model"] == "gpt-4.1"  # history kept


def test_a_default_whose_model_was_ever_changed_is_left_alone(old):
    changed = default_as_created_before(old)
    changed.model = "gpt-4o"
    save(*old, changed, user=UserFactory())
    changed.model = "gpt-4.1"  # and back: still somebody's choice
    save(*old, changed, user=UserFactory())

    BotConfig, _ = migrate()

    changed = BotConfig.objects.get(pk=changed.pk)
    assert (changed.model, changed.version) == ("gpt-4.1", 3)


def test_a_default_created_by_a_person_is_left_alone(old):
    BotConfig, BotConfigVersion = old
    config = save(BotConfig, BotConfigVersion, BotConfig(name="Default", model="gpt-4.1"), user=UserFactory())

    BotConfig, _ = migrate()

    config = BotConfig.objects.get(pk=config.pk)
    assert (config.model, config.version) == ("gpt-4.1", 1)


def test_a_channel_s_own_configuration_and_a_blank_default_are_left_alone(old):
    BotConfig, BotConfigVersion = old
    own = save(BotConfig, BotConfigVersion, BotConfig(name="Negozio", channel_id=old_channel(BotConfig).pk, model="gpt-4.1"))
    blank = default_as_created_before(old, model="")

    BotConfig, _ = migrate()

    assert BotConfig.objects.filter(pk=own.pk).values_list("model", "version").get() == ("gpt-4.1", 1)
    assert BotConfig.objects.filter(pk=blank.pk).values_list("model", "version").get() == ("", 1)


def test_running_it_twice_changes_nothing_more(old):
    config = default_as_created_before(old)

    migrate()
    migrated_to(*BEFORE)  # 0006 has no reverse: back and forth runs it a second time
    BotConfig, BotConfigVersion = migrate()

    config = BotConfig.objects.get(pk=config.pk)
    assert (config.model, config.version) == ("", 2)
    assert BotConfigVersion.objects.filter(config=config).count() == 2
