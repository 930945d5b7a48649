"""Migration conversations/0006: a default bot configuration created automatically, whose
model nobody changed, is blanked (so `OPENAI_MODEL` counts again) as a new version."""

import importlib

import pytest
from django.apps import apps

from conversations.models import BotConfig, BotConfigVersion
from conversations.services.botconfig import bot_config_default_values, bot_config_save, bot_config_snapshot

from .factories import ChannelFactory, UserFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("conversations.migrations.0006_default_bot_config_model_blank")


def migrate() -> None:
    migration.default_model_blank(apps, schema_editor=None)


def default_as_created_before(model: str = "gpt-4.1") -> BotConfig:
    """The default configuration as the old code created it on first need."""
    return bot_config_save(config=BotConfig(**{**bot_config_default_values(), "model": model})).config


def test_an_automatic_default_with_its_model_never_changed_is_blanked_as_a_new_version():
    config = default_as_created_before()
    config.instructions = "Rispondi in breve."  # a staff edit that left the model alone
    bot_config_save(config=config, user=UserFactory())

    migrate()

    config.refresh_from_db()
    assert (config.model, config.version, config.updated_by) == ("", 3, None)
    latest = BotConfigVersion.objects.get(config=config, version=3)
    assert latest.created_by is None
    assert latest.data == bot_config_snapshot(config=config)  # what the service would have kept
    assert latest.data["model"] == "" and latest.data["instructions"] == "Rispondi in breve."
    assert BotConfigVersion.objects.get(config=config, version=1).data["model"] == "gpt-4.1"  # history kept


def test_a_default_whose_model_was_ever_changed_is_left_alone():
    changed = default_as_created_before()
    changed.model = "gpt-4o"
    bot_config_save(config=changed, user=UserFactory())
    changed.model = "gpt-4.1"  # and back: still somebody's choice
    bot_config_save(config=changed, user=UserFactory())

    migrate()

    changed.refresh_from_db()
    assert (changed.model, changed.version) == ("gpt-4.1", 3)


def test_a_default_created_by_a_person_is_left_alone():
    config = bot_config_save(config=BotConfig(name="Default", model="gpt-4.1"), user=UserFactory()).config

    migrate()

    config.refresh_from_db()
    assert (config.model, config.version) == ("gpt-4.1", 1)


def test_a_channel_s_own_configuration_and_a_blank_default_are_left_alone():
    own = bot_config_save(config=BotConfig(name="Negozio", channel=ChannelFactory(), model="gpt-4.1")).config
    blank = default_as_created_before(model="")

    migrate()

    own.refresh_from_db()
    blank.refresh_from_db()
    assert (own.model, own.version) == ("gpt-4.1", 1)
    assert (blank.model, blank.version) == ("", 1)


def test_running_it_twice_changes_nothing_more():
    config = default_as_created_before()

    migrate()
    migrate()

    config.refresh_from_db()
    assert (config.model, config.version) == ("", 2)
    assert BotConfigVersion.objects.filter(config=config).count() == 2
