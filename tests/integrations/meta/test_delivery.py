"""A message delivered through Meta: what the Graph API's answers leave on the stored message
and in the log (`conversations.delivery` with the real `GraphClient`, against a fake Graph
API). The delivery's own rules (claims, retries, statuses): tests/conversations/test_delivery.py."""

from __future__ import annotations

import json
import logging

import pytest
from werkzeug import Response

from conversations.models import MessageStatus
from conversations.services.outbound import backoff_seconds, message_send
from tests.conversations.conftest import MESSAGES_PATH, deliver
from tests.conversations.factories import ACCESS_TOKEN, ConversationFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the delivery has a database connection of its own


@pytest.fixture
def outbound(channel):
    conversation = ConversationFactory(channel=channel, profile__wa_id="393331234567")
    return message_send(conversation=conversation, text="Ciao! Come posso aiutarti?")


def test_a_delivery_stores_metas_wamid_and_a_second_run_sends_nothing(graph_api, outbound):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"messages": [{"id": "wamid.sent1"}]})

    assert deliver(outbound.pk) == "sent"

    outbound.refresh_from_db()
    assert outbound.wamid == "wamid.sent1" and outbound.status == MessageStatus.SENT and outbound.sent_at
    assert outbound.conversation.revision >= 1
    body = json.loads(graph_api.log[0][0].get_data())
    assert (body["to"], body["text"]["body"]) == ("393331234567", "Ciao! Come posso aiutarti?")
    # A second run (a redelivered task, the sweeper) sends nothing more.
    assert deliver(outbound.pk) == "skipped"
    assert len(graph_api.log) == 1


def test_backoff_grows_exponentially_is_capped_and_honours_retry_after(settings):
    settings.WHATSAPP_RETRY_BASE_SECONDS = 1
    settings.WHATSAPP_RETRY_MAX_SECONDS = 60

    assert [backoff_seconds(attempt=n) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 8, 60]
    assert backoff_seconds(attempt=1, retry_after=30) == 30
    assert backoff_seconds(attempt=1, retry_after=3600) == 15 * 60  # Meta's wait, up to a quarter of an hour


def test_the_access_token_never_reaches_the_log_or_the_stored_message(graph_api, outbound, caplog, settings):
    settings.WHATSAPP_ACCESS_TOKEN = ""  # the channel's own token, unknown to the settings
    error = {"message": f"Invalid OAuth access token - Cannot parse access token: {ACCESS_TOKEN}", "type": "OAuthException",
             "code": 190, "error_data": {"details": f"token {ACCESS_TOKEN}"}}  # fmt: skip
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response(json.dumps({"error": error}), status=401, content_type="application/json"))
    caplog.set_level(logging.DEBUG)

    assert deliver(outbound.pk) == "failed"

    outbound.refresh_from_db()
    assert outbound.error_code == "190" and "expired or is invalid" in outbound.error_title
    assert ACCESS_TOKEN not in outbound.error_title + outbound.error_detail
    assert ACCESS_TOKEN not in caplog.text
