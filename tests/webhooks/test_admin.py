import json

import pytest

from conversations.models import Message
from webhooks.models import Outcome, WebhookEvent

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/webhooks/webhookevent/"


def _replay(client, *events):
    return client.post(
        CHANGELIST, {"action": "replay", "_selected_action": [e.pk for e in events], "index": 0}, follow=True
    )


def test_replaying_a_verified_event_stores_its_lost_message_again(admin_member_client, channel, post_webhook, meta_example):
    post_webhook(meta_example("Text Message"))
    event = WebhookEvent.objects.get()
    Message.objects.all().delete()  # e.g. lost by a bad deploy

    response = _replay(admin_member_client, event)

    assert "1 event replayed" in response.content.decode()
    message = Message.objects.get()
    assert message.text == "Does it come in another color?"
    replay = WebhookEvent.objects.exclude(pk=event.pk).get()
    assert replay.outcome == Outcome.PROCESSED
    assert replay.signature_valid


def test_replaying_an_event_twice_stores_no_duplicate(admin_member_client, channel, post_webhook, meta_example):
    post_webhook(meta_example("Text Message"))
    event = WebhookEvent.objects.get()

    _replay(admin_member_client, event)

    assert Message.objects.count() == 1
    assert "0 new message(s), 1 duplicate(s)" in WebhookEvent.objects.order_by("-id").first().detail


def test_an_event_with_a_bad_signature_is_never_replayed(admin_member_client, channel, post_webhook, meta_example):
    post_webhook(meta_example("Text Message"), secret="forged-secret")
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.BAD_SIGNATURE

    response = _replay(admin_member_client, event)

    assert "skipped" in response.content.decode()
    assert Message.objects.count() == 0
    assert WebhookEvent.objects.count() == 1


def test_the_event_page_shows_the_body_readably(admin_member_client, channel, post_webhook, meta_example):
    post_webhook(meta_example("Text Message"))
    event = WebhookEvent.objects.get()

    html = admin_member_client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()

    assert "Does it come in another color?" in html
    assert json.loads(event.body)["object"] in html
