"""Delivery statuses as Meta reports them, applied to the message they are about
(`conversations.sql.status`, reached through the webhook): forward only, with Meta's error."""

import pytest

from conversations.models import MessageStatus

from tests.conversations.conftest import status_payload
from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_message(channel):
    conversation = ConversationFactory(channel=channel)
    return MessageFactory(conversation=conversation, direction="out", author="bot", wamid="wamid.out", status=MessageStatus.SENT, status_rank=1)


def test_statuses_move_forward_and_never_back(post_webhook, sent_message):
    post_webhook(status_payload("wamid.out", "delivered", 1750000010))
    post_webhook(status_payload("wamid.out", "read", 1750000020))
    post_webhook(status_payload("wamid.out", "delivered", 1750000030))  # late

    sent_message.refresh_from_db()
    assert sent_message.status == "read"
    assert sent_message.delivered_at.timestamp() == 1750000010
    assert sent_message.read_at.timestamp() == 1750000020
    sent_message.conversation.refresh_from_db()
    assert sent_message.conversation.revision >= 2


def test_a_voice_note_can_be_played(post_webhook, sent_message):
    post_webhook(status_payload("wamid.out", "read", 1750000020))
    post_webhook(status_payload("wamid.out", "played", 1750000030))
    sent_message.refresh_from_db()
    assert sent_message.status == "played" and sent_message.played_at.timestamp() == 1750000030


def test_a_failed_status_records_metas_error(post_webhook, sent_message):
    errors = [
        {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Message Undeliverable."},
        }
    ]
    post_webhook(status_payload("wamid.out", "failed", 1750000040, errors))

    sent_message.refresh_from_db()
    assert sent_message.status == "failed"
    assert (sent_message.error_code, sent_message.error_title, sent_message.error_detail) == (
        "131026",
        "Message undeliverable",
        "Message Undeliverable.",
    )
