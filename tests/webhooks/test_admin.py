"""Webhook events in admin: the body shown readably, verified events replayed through ingest,
forged ones never, and the list's cost."""

import json

import pytest

from conversations.models import Channel, Message
from conversations.services.channels import channel_cache_clear
from tests.conftest import ADMIN_LIST_MAX_QUERIES
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


def test_a_replay_queues_the_turn_of_the_message_it_stored_again(
    admin_member_client, channel, post_webhook, meta_example, django_capture_on_commit_callbacks, redis_queue
):
    post_webhook(meta_example("Text Message"))
    event = WebhookEvent.objects.get()
    Message.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        _replay(admin_member_client, event)

    assert redis_queue.task_names() == ["conversations.tasks.inbound_handle"]
    assert redis_queue.task_args() == [[Message.objects.get().pk]]


def test_a_replay_for_a_number_deactivated_since_says_so_and_stores_nothing(admin_member_client, channel, post_webhook, meta_example):
    post_webhook(meta_example("Text Message"))
    event = WebhookEvent.objects.get()
    Message.objects.all().delete()
    Channel.objects.filter(pk=channel.pk).update(is_active=False)
    Channel.objects.create(name="Another number", phone_number_id="999", app_secret="another-secret-0123")
    channel_cache_clear()  # the web process's copy of the active channels, seconds later

    response = _replay(admin_member_client, event)

    assert "1 event replayed" in response.content.decode()
    assert not Message.objects.exists()
    replay = WebhookEvent.objects.exclude(pk=event.pk).get()
    assert replay.outcome == Outcome.UNKNOWN_CHANNEL and channel.phone_number_id in replay.detail


def test_a_replay_that_fails_is_reported_as_failed(admin_member_client, channel):
    event = WebhookEvent.objects.create(channel=channel, body="{not json", signature_valid=True, outcome=Outcome.MALFORMED)

    response = _replay(admin_member_client, event)

    assert "1 replay failed" in response.content.decode()
    assert WebhookEvent.objects.exclude(pk=event.pk).get().outcome == Outcome.MALFORMED


def test_an_event_cannot_be_added_or_changed_in_admin(admin_member_client, channel):
    event = WebhookEvent.objects.create(channel=channel, body="{}", signature_valid=True, outcome=Outcome.IGNORED)

    assert admin_member_client.get(f"{CHANGELIST}add/").status_code == 403
    admin_member_client.post(f"{CHANGELIST}{event.pk}/change/", {"body": "rewritten"})
    event.refresh_from_db()
    assert event.body == "{}"


def test_the_event_list_with_many_rows_costs_a_bounded_number_of_queries(admin_member_client, admin_rows, django_assert_max_num_queries):
    with django_assert_max_num_queries(ADMIN_LIST_MAX_QUERIES):
        response = admin_member_client.get(CHANGELIST)

    assert response.status_code == 200


def test_the_event_page_lists_the_skipped_items_with_their_reasons(admin_member_client, channel, post_webhook, meta_example):
    payload = meta_example("Text Message")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages.append({**messages[0], "id": "wamid.bad", "from": "3" * 33})
    post_webhook(payload)
    event = WebhookEvent.objects.get()

    html = admin_member_client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()

    assert event.outcome == Outcome.PARTIAL and "Processed, some items skipped" in html
    assert "<code>wamid.bad</code>" in html and "is not a WhatsApp phone number" in html
    assert "Processed, some items skipped" in admin_member_client.get(f"{CHANGELIST}?outcome=partial").content.decode()


def test_the_event_page_shows_a_body_nested_too_deep_to_read_as_it_is(admin_member_client, channel, post_webhook):
    post_webhook(None, raw=b"[" * 2000 + b"]" * 2000)
    event = WebhookEvent.objects.get()

    response = admin_member_client.get(f"{CHANGELIST}{event.pk}/change/")

    assert response.status_code == 200 and "[[[[" in response.content.decode()


def test_a_replay_reads_the_bytes_meta_sent_when_they_are_not_text(admin_member_client, channel, post_webhook, meta_example):
    # JSON in UTF-16: a valid delivery whose bytes are no UTF-8 text (the stored text is not it).
    body = json.dumps(meta_example("Text Message")).encode("utf-16")
    post_webhook(None, raw=body)
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.PROCESSED and bytes(event.raw_body) == body
    Message.objects.all().delete()

    _replay(admin_member_client, event)

    assert Message.objects.get().text == "Does it come in another color?"
    replay = WebhookEvent.objects.exclude(pk=event.pk).get()
    assert replay.outcome == Outcome.PROCESSED and replay.delivered_body == body
