"""Bot configurations: a default from the settings, versions on every save, restore, admin."""

import pytest

from conversations.agent.prompts import DEFAULT_INSTRUCTIONS
from conversations.agent.replies import model_for
from conversations.models import BotConfig, BotConfigVersion
from conversations.services.botconfig import (
    bot_config_cache_clear,
    bot_config_fields,
    bot_config_for_channel,
    bot_config_restore,
    bot_config_save,
)

from tests.conversations.factories import ChannelFactory, ConversationFactory, MessageFactory, UserFactory
from .conftest import handle, reply

pytestmark = pytest.mark.django_db


def test_the_default_configuration_is_created_from_the_settings_on_first_need(settings):
    settings.OPENAI_MODEL = "gpt-4.1-mini"
    channel = ChannelFactory()

    active = bot_config_for_channel(channel=channel)

    # A blank model follows OPENAI_MODEL, so changing it in `.env` counts.
    assert active.config.channel is None and active.config.model == ""
    assert model_for(active.config) == "gpt-4.1-mini"
    assert active.config.instructions == DEFAULT_INSTRUCTIONS
    assert DEFAULT_INSTRUCTIONS.startswith(
        "Sei un agente WhatsApp incaricato dell'assistenza clienti e dell'acquisizione delle informazioni di base del contatto."
    )
    assert bot_config_fields(config=active.config) == ["first_name", "last_name", "company", "email", "order_number"]
    assert active.version.version == 1
    assert bot_config_for_channel(channel=channel).config.pk == active.config.pk  # not twice


@pytest.mark.django_db(transaction=True)  # the turn runs on connections of its own
def test_a_changed_openai_model_counts_once_the_default_configuration_exists(fake_openai, graph, settings):
    settings.OPENAI_MODEL = "gpt-4.1"
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Ciao")
    handle(first.pk)
    reply(first.pk)

    settings.OPENAI_MODEL = "gpt-4.1-mini"  # changed in .env, the workers restarted
    bot_config_cache_clear()
    second = MessageFactory(conversation=conversation, text="Mi chiamo Giulia")
    handle(second.pk)
    reply(second.pk)

    assert [r["model"] for r in fake_openai.reply_requests] == ["gpt-4.1", "gpt-4.1-mini"]
    assert [r["model"] for r in fake_openai.extraction_requests] == ["gpt-4.1", "gpt-4.1-mini"]
    assert BotConfig.objects.count() == 1


def test_a_model_chosen_in_the_configuration_wins_over_openai_model(settings):
    settings.OPENAI_MODEL = "gpt-4.1"
    config = bot_config_save(config=BotConfig(name="Bot", model="gpt-4o")).config

    assert model_for(config) == "gpt-4o"


def test_a_channel_s_own_configuration_wins_over_the_default():
    channel = ChannelFactory()
    bot_config_for_channel(channel=channel)
    own = bot_config_save(config=BotConfig(name="Negozio", channel=channel, extra_fields=[{"key": "vat_number", "label": "Partita IVA"}],
                                           fields_to_collect=["email"])).config  # fmt: skip

    assert bot_config_for_channel(channel=channel).config.pk == own.pk
    assert bot_config_fields(config=own) == ["email", "vat_number"]


def test_every_save_keeps_a_version_and_a_restore_is_a_new_version():
    user = UserFactory()
    config = bot_config_save(config=BotConfig(name="Bot", instructions="prima"), user=user).config
    config.instructions = "seconda"
    bot_config_save(config=config, user=user)

    restored = bot_config_restore(config=config, version=1, user=user)

    config.refresh_from_db()
    assert config.version == 3 and restored.version == 3 and config.instructions == "prima"
    assert list(BotConfigVersion.objects.filter(config=config).values_list("version", "data__instructions")) == [
        (3, "prima"), (2, "seconda"), (1, "prima"),
    ]  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the turn runs on connections of its own
def test_each_bot_message_records_the_version_that_answered(offline, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao")
    assert handle(message.pk) == "queued"
    assert reply(message.pk) == "sent"

    bot = conversation.messages.get(direction="out")
    active = bot_config_for_channel(channel=conversation.channel)
    assert bot.bot_config_version == active.version


@pytest.fixture
def admin_client(client):
    admin = UserFactory(username="boss", is_superuser=True)
    client.force_login(admin)
    return client


def test_admin_saves_versions_shows_the_history_and_restores(admin_client):
    config = bot_config_save(config=BotConfig(name="Bot", instructions="prima")).config
    url = f"/admin/conversations/botconfig/{config.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and "Cronologia" in page.content.decode()

    form = {
        "name": "Bot", "is_active": "on", "model": "gpt-6-sol", "instructions": "seconda",
        "vector_store_ids": '["vs_123"]', "fields_to_collect": ["first_name", "email"],
        "extra_fields": '[{"key": "vat_number", "label": "Partita IVA"}]', "order_number_pattern": r"\d{6}",
        "temperature": "", "max_output_tokens": "", "fixed_holding_it": "Attendi", "fixed_handoff_it": "Ti passo un collega",
    }  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    config.refresh_from_db()
    assert config.version == 2 and config.fields_to_collect == ["first_name", "email"] and config.vector_store_ids == ["vs_123"]

    page = admin_client.get(url)
    assert b"Ripristina v1" in page.content
    response = admin_client.post(f"/admin/conversations/botconfig/{config.pk}/restore/1/")
    assert response.status_code == 302
    config.refresh_from_db()
    assert config.version == 3 and config.instructions == "prima"


def test_admin_refuses_a_bad_extra_field_key(admin_client):
    config = bot_config_save(config=BotConfig(name="Bot")).config
    form = {
        "name": "Bot", "model": "", "instructions": "", "vector_store_ids": "[]",
        "extra_fields": '[{"key": "Bad Key"}]', "order_number_pattern": "",
    }  # fmt: skip
    response = admin_client.post(f"/admin/conversations/botconfig/{config.pk}/change/", form)
    assert response.status_code == 200 and "Chiave non valida" in response.content.decode()
    config.refresh_from_db()
    assert config.version == 1


def test_admin_shows_the_model_in_force_in_the_list_and_on_the_page(admin_client, settings):
    settings.OPENAI_MODEL = "gpt-4.1"
    default = bot_config_for_channel(channel=ChannelFactory()).config
    own = bot_config_save(config=BotConfig(name="Negozio", channel=ChannelFactory(phone_number_id="200"), model="gpt-4o")).config

    listing = admin_client.get("/admin/conversations/botconfig/").content.decode()
    assert "Modello in uso" in listing
    assert '<td class="field-model_in_force">— (OPENAI_MODEL: gpt-4.1)</td>' in listing
    assert '<td class="field-model_in_force">gpt-4o</td>' in listing

    page = admin_client.get(f"/admin/conversations/botconfig/{default.pk}/change/").content.decode()
    assert '<div class="readonly">— (OPENAI_MODEL: gpt-4.1)</div>' in page
    assert "Vuoto: OPENAI_MODEL (ora gpt-4.1)." in page
    page = admin_client.get(f"/admin/conversations/botconfig/{own.pk}/change/").content.decode()
    assert '<div class="readonly">gpt-4o</div>' in page


def test_admin_offers_a_new_configuration_with_a_blank_model(admin_client, settings):
    settings.OPENAI_MODEL = "gpt-4.1"

    page = admin_client.get("/admin/conversations/botconfig/add/")

    assert page.context["adminform"].form.initial["model"] == ""
    assert '<div class="readonly">— (OPENAI_MODEL: gpt-4.1)</div>' in page.content.decode()


def test_admin_edits_the_fixed_messages_one_text_per_kind_and_language(admin_client):
    config = bot_config_save(config=BotConfig(name="Bot", fixed_messages={"media": {"de": "Danke für Ihr {type}."}})).config
    url = f"/admin/conversations/botconfig/{config.pk}/change/"
    page = admin_client.get(url).content.decode()
    for name in ("fixed_holding_it", "fixed_holding_en", "fixed_handoff_it", "fixed_handoff_en", "fixed_away_it", "fixed_away_en",
                 "fixed_media_it", "fixed_media_en"):  # fmt: skip
        assert f'name="{name}"' in page
    assert 'placeholder="Ti passo a un collega: ti risponderà qui al più presto."' in page  # the built-in text, greyed

    form = {
        "name": "Bot", "is_active": "on", "model": "", "instructions": "", "vector_store_ids": "[]", "extra_fields": "[]",
        "order_number_pattern": "", "temperature": "", "max_output_tokens": "",
        "fixed_handoff_it": " Un collega arriva subito. ", "fixed_handoff_en": "A colleague is on the way.",
        "fixed_away_en": "Nobody is in: we are back {back}.", "fixed_media_it": "",
    }  # fmt: skip
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    config.refresh_from_db()
    assert config.version == 2
    assert config.fixed_messages == {
        "media": {"de": "Danke für Ihr {type}."},  # a language the form does not show is kept
        "handoff": {"it": "Un collega arriva subito.", "en": "A colleague is on the way."},
        "away": {"en": "Nobody is in: we are back {back}."},
    }
    assert config.versions.get(version=2).data["fixed_messages"] == config.fixed_messages
    assert "Un collega arriva subito." in admin_client.get(url).content.decode()


def test_the_history_compares_two_versions_as_a_line_diff(admin_client):
    config = bot_config_save(config=BotConfig(name="Bot", instructions="Sei un assistente.\nRispondi in breve.")).config
    config.instructions, config.model = "Sei un assistente.\nRispondi con cura.", "gpt-6-sol"
    bot_config_save(config=config)
    page = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/change/").content.decode()
    # v1 and v2 are preselected; the radios belong to the diff form, outside the change form (labels in Italian, the default).
    assert 'form="diff-form" name="a" value="1" aria-label="Confronta v1 (la più vecchia)" checked' in page
    assert 'form="diff-form" name="b" value="2" aria-label="Confronta v2 (la più recente)" checked' in page

    diff = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/diff/", {"a": 2, "b": 1}).content.decode()
    instructions = diff[diff.index('data-setting="instructions"') :].split("</ul>")[0]
    assert "<li>Sei un assistente.</li>" in instructions
    assert "<del>Rispondi in breve.</del>" in instructions and "<ins>Rispondi con cura.</ins>" in instructions
    assert 'data-setting="model"' in diff and 'data-setting="name"' not in diff


def test_a_diff_of_a_version_that_does_not_exist_goes_back_with_an_error(admin_client):
    config = bot_config_save(config=BotConfig(name="Bot")).config
    response = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/diff/", {"a": 1, "b": 9}, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/conversations/botconfig/{config.pk}/change/"
    assert "Questa versione della configurazione non esiste." in response.content.decode()
    response = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/diff/", {"a": "x"}, follow=True)
    assert "Scegli due versioni da confrontare." in response.content.decode()
