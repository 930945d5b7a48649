"""Migration conversations/0017: the single-language holding and hand-off texts and the media
acknowledgements become `BotConfig.fixed_messages` (by kind and language), in the
configuration and in every saved version (a restore brings them back); a thread with an
OpenAI conversation counts everything so far as known to it."""

import pytest

from conversations.models import BotConfig, BotConfigVersion, Conversation
from conversations.services.botconfig import bot_config_restore

from .factories import ConversationFactory, MessageFactory
from .migrations import migrated_to, migrated_to_latest

pytestmark = pytest.mark.django_db

BEFORE = ("conversations", "0016_templates")
OLD_DEFAULT_HOLDING = "Grazie per il messaggio! In questo momento il nostro assistente non è disponibile: un collega ti risponderà al più presto."


def test_old_texts_become_the_business_language_s_and_versions_follow(settings):
    settings.LANGUAGE_CODE = "it"
    conversation = ConversationFactory(openai_conversation_id="conv_1")
    newest = MessageFactory(conversation=conversation)
    apps = migrated_to(*BEFORE)
    OldConfig, OldVersion = apps.get_model("conversations", "BotConfig"), apps.get_model("conversations", "BotConfigVersion")
    old = {
        "holding_message": OLD_DEFAULT_HOLDING, "handoff_message": "Arriva un nostro esperto!",
        "media_acknowledgements": {"en": "Got your {type}.", "de": " "},
    }  # fmt: skip
    config = OldConfig.objects.create(name="Negozio", version=2, **old)
    OldVersion.objects.create(config=config, version=1, data={"name": "Negozio", "handoff_message": "Prima versione", "holding_message": ""})
    OldVersion.objects.create(config=config, version=2, data={"name": "Negozio", **old})

    migrated_to_latest()

    migrated = BotConfig.objects.get(pk=config.pk)
    # The old built-in holding text was nobody's choice: the built-in texts (in every language) speak.
    assert migrated.fixed_messages == {"handoff": {"it": "Arriva un nostro esperto!"}, "media": {"en": "Got your {type}."}}
    first = BotConfigVersion.objects.get(config=migrated, version=1).data
    assert first == {"name": "Negozio", "fixed_messages": {"handoff": {"it": "Prima versione"}}}
    assert bot_config_restore(config=migrated, version=1).config.fixed_messages == {"handoff": {"it": "Prima versione"}}
    assert Conversation.objects.get(pk=conversation.pk).openai_synced_message_id == newest.pk
