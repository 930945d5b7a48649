"""Migration conversations/0009: OpenAI shut stored prompts down on 2026-11-30. A configuration
that answered with one gets a new version that keeps the prompt's id, version and variables
for the admin, who is told on its page until someone saves it; the fields go."""

import pytest

from conversations.models import BotConfig, BotConfigVersion
from conversations.services.botconfig import RETIRED_PROMPT_KEY, bot_config_retired_prompt, bot_config_save

from .factories import PHONE_NUMBER_ID, UserFactory
from .migrations import migrated_to, migrated_to_latest

pytestmark = pytest.mark.django_db

BEFORE = ("conversations", "0008_message_edits_and_deletions")


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="boss", is_superuser=True))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def configurations_before():
    """A configuration with a stored prompt and one without, as the old code saved them."""
    apps = migrated_to(*BEFORE)
    OldConfig, OldVersion = apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")
    made = []
    # The channel as of then too (today's model may have columns that schema lacks).
    channel = apps.get_model("conversations", "Channel").objects.create(name="Test number", phone_number_id=PHONE_NUMBER_ID)
    for name, channel, prompt in (("Negozio", channel, "pmpt_68ab"), ("Default", None, "")):
        config = OldConfig.objects.create(
            name=name, channel_id=channel and channel.pk, instructions="Sei gentile.", prompt_id=prompt,
            prompt_version="3" if prompt else "", prompt_variables={"tono": "formale"} if prompt else {},
        )  # fmt: skip
        OldVersion.objects.create(config=config, version=1, data={"name": name, "prompt_id": prompt, "instructions": "Sei gentile."})
        made.append(config.pk)
    return made


def test_a_configuration_with_a_stored_prompt_gets_a_version_that_names_it():
    with_prompt, without = configurations_before()

    migrated_to_latest()

    config = BotConfig.objects.get(pk=with_prompt)
    assert (config.version, config.instructions, config.updated_by) == (2, "Sei gentile.", None)
    latest = BotConfigVersion.objects.get(config=config, version=2)
    assert latest.created_by is None
    assert latest.data[RETIRED_PROMPT_KEY] == {"id": "pmpt_68ab", "version": "3", "variables": {"tono": "formale"}}
    assert latest.data["instructions"] == "Sei gentile." and "prompt_id" not in latest.data
    assert BotConfigVersion.objects.get(config=config, version=1).data["prompt_id"] == "pmpt_68ab"  # history kept
    assert bot_config_retired_prompt(config=config)["id"] == "pmpt_68ab"

    untouched = BotConfig.objects.get(pk=without)
    assert untouched.version == 1 and bot_config_retired_prompt(config=untouched) is None
    assert not hasattr(untouched, "prompt_id")


def test_admin_names_the_retired_prompt_until_the_configuration_is_saved(admin_client):
    with_prompt, _ = configurations_before()
    migrated_to_latest()
    url = f"/admin/conversations/botconfig/{with_prompt}/change/"

    page = admin_client.get(url).content.decode()
    assert "answered with the OpenAI stored prompt pmpt_68ab (version 3, variables: tono=formale)" in page
    assert "copy its text into the Instructions" in page

    config = BotConfig.objects.get(pk=with_prompt)
    config.instructions = "Sei l'assistente del negozio. Usa un tono formale."  # the prompt, pasted
    bot_config_save(config=config, user=UserFactory())
    assert "pmpt_68ab" not in admin_client.get(url).content.decode().split("History")[0]
    assert bot_config_retired_prompt(config=config) is None
