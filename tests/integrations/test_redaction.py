"""Secrets out of log lines and error texts (`integrations.redaction`)."""

import logging

import pytest
from django.conf import settings

from integrations.redaction import RedactSecretsFilter, redact

TOKEN = "EAAtesttoken0123456789abcdefghijklmnop"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        (f"GET /{settings.WHATSAPP_API_VERSION}/me?access_token=s3cr3t-value&fields=id", "s3cr3t-value"),
        ("api_key=xyz123 token=tok456 secret='shh789' password=pw000", "xyz123"),
        ("openai said: invalid key sk-proj-abcdefgh12345678", "sk-proj-abcdefgh12345678"),
        (f"Invalid OAuth access token - Cannot parse access token: {TOKEN}", TOKEN),
    ],
)
def test_known_shapes_of_secret_are_redacted(text, secret):
    cleaned = redact(text)

    assert secret not in cleaned and "[redacted]" in cleaned


def test_the_configured_secrets_are_redacted_whatever_their_shape(settings):
    settings.WHATSAPP_APP_SECRET = "plain-words-app-secret"
    settings.OPENAI_API_KEY = "short"  # too short to hunt for: it would redact ordinary words

    cleaned = redact("the app secret plain-words-app-secret leaked; a short word stays")

    assert "plain-words-app-secret" not in cleaned and "short word" in cleaned


def test_text_without_secrets_is_left_alone():
    text = "message 42 (conversation 7): temporary send failure, retry in 2.0s"

    assert redact(text) == text


def test_the_filter_scrubs_a_records_message_and_arguments(settings):
    settings.WHATSAPP_ACCESS_TOKEN = TOKEN
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s and Bearer abc.def", (f"token={TOKEN}",), None)

    assert RedactSecretsFilter().filter(record) is True
    assert TOKEN not in record.getMessage() and "abc.def" not in record.getMessage()


def test_the_filter_scrubs_the_traceback_of_an_exception(settings):
    settings.WHATSAPP_ACCESS_TOKEN = TOKEN
    try:
        raise RuntimeError(f"calling https://graph.example/{settings.WHATSAPP_API_VERSION}/x?access_token={TOKEN}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "send failed", (), sys.exc_info())

    RedactSecretsFilter().filter(record)

    assert TOKEN not in record.exc_text and "RuntimeError" in record.exc_text


def test_a_broken_format_string_is_let_through():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "%d items", ("many",), None)

    assert RedactSecretsFilter().filter(record) is True


def test_every_handler_of_the_project_redacts(settings):
    filters = {name: spec for name, spec in settings.LOGGING.get("filters", {}).items()}
    redacting = {name for name, spec in filters.items() if "RedactSecretsFilter" in str(spec.get("()", ""))}

    assert redacting
    for name, handler in settings.LOGGING["handlers"].items():
        assert redacting & set(handler.get("filters", [])), name
