"""The bot's fixed messages (`prompts.fixed_message`): built in Italian and English, in the
customer's language; the configuration's text wins; a language without a text falls back to
the business's (LANGUAGE_CODE), then English; placeholders replaced as written."""

import pytest

from conversations.agent.prompts import FIXED_MESSAGE_KINDS, FIXED_MESSAGES, fixed_message, media_acknowledgement


@pytest.mark.parametrize("kind", FIXED_MESSAGE_KINDS)
@pytest.mark.parametrize("language", ["it", "en"])
def test_each_fixed_message_speaks_the_customer_s_language(kind, language, settings):
    settings.LANGUAGE_CODE = "it"
    text = fixed_message(kind, language=language, configured={}, back="lunedì alle 9:00", type="video")
    assert text == FIXED_MESSAGES[kind][language].replace("{back}", "lunedì alle 9:00").replace("{type}", "video")
    assert "{" not in text


def test_the_configured_text_wins_and_a_blank_one_does_not(settings):
    configured = {"handoff": {"en": "A human will take it from here.", "it": "  "}}
    assert fixed_message("handoff", language="en", configured=configured) == "A human will take it from here."
    assert fixed_message("handoff", language="it", configured=configured) == FIXED_MESSAGES["handoff"]["it"]
    assert fixed_message("holding", language="en", configured=configured) == FIXED_MESSAGES["holding"]["en"]


def test_a_language_without_a_text_falls_back_to_the_business_s_then_english(settings):
    settings.LANGUAGE_CODE = "it"
    assert fixed_message("handoff", language="fr", configured={}) == FIXED_MESSAGES["handoff"]["it"]
    assert fixed_message("handoff", language="", configured={}) == FIXED_MESSAGES["handoff"]["it"]
    settings.LANGUAGE_CODE = "de"
    assert fixed_message("handoff", language="fr", configured={"handoff": {"de": "Einen Moment."}}) == "Einen Moment."
    assert fixed_message("handoff", language="fr", configured={}) == FIXED_MESSAGES["handoff"]["en"]


def test_placeholders_are_replaced_literally_in_the_text_s_language(settings):
    settings.LANGUAGE_CODE = "it"
    configured = {"away": {"en": "Back {back} {not a placeholder}."}}
    assert fixed_message("away", language="en", configured=configured, back="on Monday") == "Back on Monday {not a placeholder}."
    assert media_acknowledgement(type="audio", language="fr", configured={}) == FIXED_MESSAGES["media"]["it"].replace(
        "{type}", "messaggio vocale"
    )
    assert "voice message" in media_acknowledgement(type="audio", language="en", configured={})
