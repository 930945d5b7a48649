"""OpenAI's 2026 retirements: stored prompts shut down (the prompt is the configuration's
instructions), models that shut down (the dates admin shows and the alerts 30 days ahead,
read through the real SDK from the fake OpenAI's `GET /v1/models`), a model OpenAI refuses
(holding message, hand-off, alert: no retries), prices from OPENAI_PRICES (unknown, not zero)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.checks import WARNING, run_checks
from django.test import override_settings
from django.utils import timezone, translation

from conversations.agent.replies import cost_estimate
from conversations.checks import check_stored_prompt_retired
from conversations.models import Alert, AlertKind, BotConfig, Owner
from conversations.services.botconfig import bot_config_for_channel, bot_config_save
from conversations.services.openai_models import CACHE_KEY
from conversations.tasks import model_shutdowns_check

from tests.conversations.factories import ChannelFactory, ConversationFactory, UserFactory
from .conftest import bot_texts, customer_says, reply, sent_to_whatsapp

DEFAULT_MODEL = "gpt-6-luna"
TRANSCRIBE_MODEL = "gpt-transcribe"  # OPENAI_TRANSCRIBE_MODEL's default


@pytest.fixture(autouse=True)
def no_model_check_kept():
    cache.delete(CACHE_KEY)
    yield
    cache.delete(CACHE_KEY)


@pytest.fixture
def admin_client(client):
    """An admin reading in English (Italian is the default)."""
    client.force_login(UserFactory(username="boss", is_superuser=True))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def days_from_today(days: int) -> str:
    return (timezone.now().date() + timedelta(days=days)).isoformat()


# --- Stored prompts ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the turn runs on connections of its own
@pytest.mark.usefixtures("quiet_period")
def test_the_reply_is_asked_with_the_configuration_s_instructions_never_a_stored_prompt(fake_openai, graph, settings):
    settings.OPENAI_PROMPT_ID = "pmpt_left_in_the_env"
    conversation = ConversationFactory()
    bot_config_save(config=BotConfig(name="Negozio", channel=conversation.channel, instructions="Sei il negozio di Anna."))

    message = customer_says(conversation, "Ciao")
    assert reply(message.pk) == "sent"

    (request,) = fake_openai.reply_requests
    assert "prompt" not in request
    assert request["instructions"].startswith("Sei il negozio di Anna.")


def test_openai_prompt_id_still_set_is_a_warning_that_says_how_to_move_the_prompt(settings):
    settings.OPENAI_PROMPT_ID = "pmpt_0123"

    with translation.override("it"):  # in English whatever language is active
        (warning,) = check_stored_prompt_retired(None)

    # A warning: printed by every command, `make check` fails on it, `migrate` (release) still runs.
    assert warning.level == WARNING and warning.id == "whatsbot.W001"
    assert "pmpt_0123" in warning.msg and "2026-11-30" in warning.msg
    assert "Instructions" in warning.hint and "remove OPENAI_PROMPT_ID" in warning.hint
    assert [m.id for m in run_checks() if m.id == "whatsbot.W001"] == ["whatsbot.W001"]

    settings.OPENAI_PROMPT_ID = ""
    assert check_stored_prompt_retired(None) == []


@pytest.mark.django_db
def test_admin_says_openai_prompt_id_is_retired_on_the_bot_configuration_pages(admin_client, settings):
    settings.OPENAI_PROMPT_ID = "pmpt_0123"
    config = bot_config_save(config=BotConfig(name="Bot")).config

    for url in ("/admin/conversations/botconfig/", f"/admin/conversations/botconfig/{config.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert "OPENAI_PROMPT_ID is set (pmpt_0123), but OpenAI shut stored prompts down on 2026-11-30" in page
        assert "copy its text into the Instructions" in page

    settings.OPENAI_PROMPT_ID = ""
    assert "OPENAI_PROMPT_ID" not in admin_client.get("/admin/conversations/botconfig/").content.decode()


@pytest.mark.django_db
def test_admin_shows_the_page_in_italian_too(admin_client, settings):
    settings.OPENAI_PROMPT_ID = "pmpt_0123"

    page = admin_client.get("/admin/conversations/botconfig/", HTTP_ACCEPT_LANGUAGE="it").content.decode()

    assert "OpenAI ha chiuso i prompt salvati" in page


# --- Models that shut down ------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_shows_each_configured_model_s_shutdown_date_as_openai_lists_it(fake_openai, admin_client):
    default = bot_config_for_channel(channel=ChannelFactory()).config
    own = bot_config_save(config=BotConfig(name="Negozio", channel=ChannelFactory(phone_number_id="200"), model="gpt-4.1")).config
    fake_openai.models = {DEFAULT_MODEL: None, TRANSCRIBE_MODEL: None, "gpt-4.1": "2027-01-14", "gpt-4o": "2027-01-14"}

    assert "not checked yet" in admin_client.get("/admin/conversations/botconfig/").content.decode()
    model_shutdowns_check()

    listing = admin_client.get("/admin/conversations/botconfig/").content.decode()
    assert "none announced" in listing and "01/14/2027" in listing
    assert "none announced" in admin_client.get(f"/admin/conversations/botconfig/{default.pk}/change/").content.decode()
    assert "01/14/2027" in admin_client.get(f"/admin/conversations/botconfig/{own.pk}/change/").content.decode()
    # Asked once, by the check: the pages read what it kept.
    assert len(fake_openai.bodies("models")) == 1
    # 45 days ahead: no alert yet.
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_the_bot_configuration_page_opens_when_the_cache_cannot_be_read(admin_client):
    config = bot_config_for_channel(channel=ChannelFactory()).config
    # Nothing listens on port 1: every read of the cache fails at once. Only for the request
    # (the fixtures' own cache calls, before and after, use the real one).
    with override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}):
        response = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/change/")

    assert response.status_code == 200 and "not checked yet" in response.content.decode()


@pytest.mark.django_db
def test_a_model_in_use_that_shuts_down_within_30_days_is_an_alert_until_it_is_replaced(fake_openai, admin_client):
    config = bot_config_save(config=BotConfig(name="Negozio", channel=ChannelFactory(), model="gpt-4.1")).config
    fake_openai.models = {DEFAULT_MODEL: None, TRANSCRIBE_MODEL: None, "gpt-4.1": days_from_today(20), "gpt-4o": days_from_today(20)}

    assert model_shutdowns_check() == 1
    model_shutdowns_check()  # every hour: the same alert, counted

    alert = Alert.objects.get()
    assert (alert.kind, alert.subject, alert.count, alert.resolved_at) == (AlertKind.MODEL_SHUTDOWN, "gpt-4.1", 2, None)
    assert "shuts down in 20 day(s)" in alert.text
    page = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/change/").content.decode()
    assert "shuts down in 20 day(s)" in page
    assert "gpt-4.1" in admin_client.get("/admin/conversations/alert/").content.decode()

    config.model = "gpt-6-sol"  # gpt-4o is not in use: no alert about it
    bot_config_save(config=config)
    fake_openai.models["gpt-6-sol"] = None
    assert model_shutdowns_check() == 0
    alert.refresh_from_db()
    assert alert.resolved_at is not None


@pytest.mark.django_db
def test_a_model_in_use_that_openai_does_not_list_is_an_alert(fake_openai, settings):
    settings.OPENAI_EXTRACTION_MODEL = "gpt-4.1-nano"  # shut down on 2026-10-23
    fake_openai.models = {DEFAULT_MODEL: None, TRANSCRIBE_MODEL: None}

    model_shutdowns_check()

    alert = Alert.objects.get()
    assert alert.subject == "gpt-4.1-nano" and "does not list gpt-4.1-nano" in alert.text


@pytest.mark.django_db
def test_a_transcription_model_that_shuts_down_is_an_alert_naming_its_setting(fake_openai, settings):
    settings.OPENAI_TRANSCRIBE_MODEL = "whisper-1"  # shuts down on 2027-02-26
    fake_openai.models = {DEFAULT_MODEL: None, "whisper-1": days_from_today(10)}

    assert model_shutdowns_check() == 1

    alert = Alert.objects.get()
    assert (alert.kind, alert.subject) == (AlertKind.MODEL_SHUTDOWN, "whisper-1")
    assert "shuts down in 10 day(s)" in alert.text and "OPENAI_TRANSCRIBE_MODEL" in alert.text


@pytest.mark.django_db
def test_openai_unreachable_leaves_the_last_dates_and_the_admin_page_does_not_wait(fake_openai, admin_client, settings):
    fake_openai.models = {DEFAULT_MODEL: "2027-06-30", TRANSCRIBE_MODEL: "2027-06-30"}
    model_shutdowns_check()
    config = bot_config_for_channel(channel=ChannelFactory()).config

    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens
    settings.OPENAI_MAX_ATTEMPTS = 1
    assert model_shutdowns_check() == 0

    started = timezone.now()
    page = admin_client.get(f"/admin/conversations/botconfig/{config.pk}/change/")
    assert page.status_code == 200 and "06/30/2027" in page.content.decode()
    assert timezone.now() - started < timedelta(seconds=5)


@pytest.mark.django_db
def test_without_an_api_key_openai_is_not_asked(offline):
    assert model_shutdowns_check() == 0
    assert cache.get(CACHE_KEY) is None


# --- A model OpenAI refuses ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the turn runs on connections of its own
@pytest.mark.usefixtures("quiet_period")
def test_a_model_openai_refuses_gets_the_holding_message_the_hand_off_and_an_alert_without_retries(fake_openai, graph, admin_client):
    conversation = ConversationFactory()
    bot_config_save(config=BotConfig(name="Negozio", channel=conversation.channel, model="gpt-4o", fields_to_collect=["email"]))
    fake_openai.refused_models = {"gpt-4o"}

    message = customer_says(conversation, "Ciao, avete il modello rosso?")
    assert reply(message.pk) == "holding"

    # Refused once, not retried: the extraction's call and the reply's, one each.
    assert len(fake_openai.reply_requests) == 1 and len(fake_openai.extraction_requests) == 1
    assert bot_texts(conversation)[0].startswith("Grazie per il messaggio! In questo momento il nostro assistente non è disponibile")
    assert len(sent_to_whatsapp(graph)) == 1
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and "does not exist" in conversation.handoff_reason
    message.refresh_from_db()
    assert message.error_code == "openai_404" and "1 attempt(s)" in message.error_detail

    # One alert for the model, counted by the extraction's refusal and the reply's.
    alert = Alert.objects.get()
    assert (alert.kind, alert.subject, alert.count) == (AlertKind.MODEL_REFUSED, "gpt-4o", 2)
    assert "OpenAI refuses gpt-4o" in alert.text and "Choose another model" in alert.text
    listing = admin_client.get("/admin/conversations/botconfig/").content.decode()
    assert "OpenAI refuses gpt-4o" in listing


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("quiet_period")
def test_another_permanent_error_is_no_model_alert(fake_openai, graph):
    fake_openai.reply_failures.append(400)
    conversation = ConversationFactory()

    message = customer_says(conversation, "Ciao")

    assert reply(message.pk) == "holding"
    assert not Alert.objects.exists()


# --- Prices ------------------------------------------------------------------------------------


def test_the_default_model_has_a_price(settings):
    assert settings.OPENAI_MODEL == DEFAULT_MODEL
    assert cost_estimate(model=DEFAULT_MODEL, input_tokens=1_000_000, cached_tokens=0, output_tokens=1_000_000) == Decimal("0.600000")


def test_a_dated_snapshot_costs_what_its_model_costs_and_an_unknown_model_costs_unknown():
    def cost(model: str) -> Decimal | None:
        return cost_estimate(model=model, input_tokens=1200, cached_tokens=1000, output_tokens=40)

    assert cost("gpt-6-luna-2026-09-22") == cost("gpt-6-luna") == Decimal("0.000050")
    assert cost("gpt-6-luna-fast") is None  # another price, not the family's
    assert cost("gpt-7-nova") is None
    assert cost_estimate(model="gpt-6-luna", input_tokens=None, cached_tokens=None, output_tokens=None) is None


def test_prices_come_from_openai_prices(settings):
    settings.OPENAI_PRICES = {"gpt-7-nova": {"input": Decimal("1"), "cached_input": Decimal("0.5"), "output": Decimal("2")}}

    assert cost_estimate(model="gpt-7-nova", input_tokens=2_000_000, cached_tokens=1_000_000, output_tokens=1_000_000) == Decimal("3.500000")
    assert cost_estimate(model="gpt-6-luna", input_tokens=1, cached_tokens=0, output_tokens=1) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("quiet_period")
def test_a_reply_by_an_unpriced_model_has_an_unknown_cost_shown_as_unknown(fake_openai, graph, settings, admin_client):
    settings.OPENAI_MODEL = "gpt-7-nova"
    conversation = ConversationFactory()

    message = customer_says(conversation, "Ciao")
    assert reply(message.pk) == "sent"

    bot = conversation.messages.get(direction="out")
    assert (bot.ai_model, bot.input_tokens, bot.cost_usd) == ("gpt-7-nova-2025-04-14", 1200, None)
    page = admin_client.get(f"/admin/conversations/message/{bot.pk}/change/").content.decode()
    assert '<div class="readonly">unknown</div>' in page
