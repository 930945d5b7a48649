import pytest

from conversations.models import Conversation, Message
from webhooks.models import Outcome, WebhookEvent

pytestmark = pytest.mark.django_db


def test_it_stores_a_text_message_from_metas_example(channel, post_webhook, meta_example):
    response = post_webhook(meta_example("Text Message"))

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.text == "Does it come in another color?"
    assert message.conversation.profile.wa_id == "16505551234"
    assert message.conversation.profile.profile_name == "Sheena Nelson"
    assert WebhookEvent.objects.get().outcome == Outcome.PROCESSED
