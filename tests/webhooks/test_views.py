"""`POST /webhooks/whatsapp/` with Meta's own example payloads, and the subscription handshake."""

import json

import pytest

from conversations.models import Conversation, Message, MessageType
from profiles.models import ClientProfile
from webhooks.models import Outcome, WebhookEvent

from tests.conversations.factories import APP_SECRET, ChannelFactory
from tests.integrations.meta.test_parser import MESSAGES

pytestmark = pytest.mark.django_db

# Meta's example name → (stored type, text the message must carry): the parser's own table.
MESSAGE_EXAMPLES = MESSAGES


def test_it_stores_a_text_message_from_metas_example(channel, post_webhook, meta_example):
    response = post_webhook(meta_example("Text Message"))

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.text == "Does it come in another color?"
    assert message.direction == "in" and message.author == "customer"
    assert message.wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.provider_timestamp.timestamp() == 1749416383
    profile = message.conversation.profile
    assert profile.wa_id == "16505551234" and profile.profile_name == "Sheena Nelson"
    conversation = message.conversation
    assert conversation.channel == channel
    assert conversation.last_inbound_at == message.provider_timestamp
    assert conversation.unread_count == 1
    assert conversation.last_message_preview == "Does it come in another color?"
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.PROCESSED and event.signature_valid and event.channel == channel
    assert json.loads(event.body) == meta_example("Text Message")


@pytest.mark.parametrize("example", sorted(MESSAGE_EXAMPLES))
def test_it_stores_every_inbound_type_with_its_content(example, channel, post_webhook, meta_example):
    kind, text = MESSAGE_EXAMPLES[example]
    payload = meta_example(example)

    assert post_webhook(payload).status_code == 200

    message = Message.objects.get()
    assert message.type == kind
    assert message.text == text
    raw = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message.payload == raw  # the provider's object, whole


def test_it_keeps_media_metadata_reply_context_and_ad_referral(channel, post_webhook, meta_example):
    post_webhook(meta_example("Image Message"))
    image = Message.objects.get()
    assert image.media == {
        "id": "1003383421387256",
        "mime_type": "image/jpeg",
        "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        "caption": "Taj Mahal",
    }
    Message.objects.all().delete()

    post_webhook(meta_example("Text Message with Context (Product Inquiry)"))
    assert Message.objects.get().context_wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"

    post_webhook(meta_example("Text Message from Click to WhatsApp Ad"))
    ad = Message.objects.get(text__startswith="Hello!")
    assert ad.referral["source_type"] == "ad" and ad.referral["headline"] == "Chat with us"

    post_webhook(meta_example("Reaction Message"))
    reaction = Message.objects.get(type=MessageType.REACTION)
    assert reaction.context_wamid == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"


def test_an_unsupported_message_keeps_its_errors(channel, post_webhook, meta_example):
    post_webhook(meta_example("Unsupported Message"))
    message = Message.objects.get()
    assert message.payload["errors"][0]["code"] == 131051


@pytest.mark.parametrize("example", ["Group Create Message", "Group Settings Update", "Group Remove Participants"])
def test_it_answers_200_to_events_it_does_not_act_on_and_keeps_them(example, channel, post_webhook, meta_example):
    response = post_webhook(meta_example(example))

    assert response.status_code == 200
    assert not Message.objects.exists()
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.IGNORED and event.signature_valid


def test_it_tolerates_keys_and_types_it_does_not_know(channel, post_webhook, meta_example):
    payload = meta_example("Text Message")
    value = payload["entry"][0]["changes"][0]["value"]
    value["brand_new_key"] = {"x": 1}
    value["messages"][0]["some_future_field"] = [1, 2]
    value["messages"].append({"from": "16505551234", "id": "wamid.future", "timestamp": "1749416390", "type": "hologram", "hologram": {}})

    assert post_webhook(payload).status_code == 200

    assert set(Message.objects.values_list("type", flat=True)) == {"text", "unknown"}


def test_a_missing_signature_is_refused_and_nothing_is_stored(channel, post_webhook, meta_example):
    response = post_webhook(meta_example("Text Message"), secret="")

    assert response.status_code == 403
    assert not Message.objects.exists()
    assert WebhookEvent.objects.get().outcome == Outcome.BAD_SIGNATURE


def test_a_wrong_signature_is_refused_and_nothing_is_stored(channel, post_webhook, meta_example):
    assert post_webhook(meta_example("Text Message"), secret="not-the-app-secret").status_code == 403
    assert post_webhook(meta_example("Text Message"), signature="sha256=" + "0" * 64).status_code == 403
    assert post_webhook(meta_example("Text Message"), signature="md5=abc").status_code == 403

    assert not Message.objects.exists() and not ClientProfile.objects.exists()
    assert not WebhookEvent.objects.exclude(outcome=Outcome.BAD_SIGNATURE).exists()


def test_a_body_signed_with_another_apps_secret_is_refused(channel, post_webhook, meta_example):
    ChannelFactory(phone_number_id="999", app_secret="other-app-secret-xyz")
    payload = meta_example("Text Message")  # addressed to `channel`

    assert post_webhook(payload, secret="other-app-secret-xyz").status_code == 403
    assert not Message.objects.exists()


def test_malformed_json_gets_400_and_is_kept(channel, post_webhook):
    response = post_webhook(None, raw=b'{"object": "whatsapp_business_account", "entry": [')

    assert response.status_code == 400
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.MALFORMED and event.signature_valid


def test_json_that_is_not_a_webhook_gets_400(channel, post_webhook):
    assert post_webhook({"entry": "nope"}).status_code == 400
    assert post_webhook([1, 2, 3]).status_code == 400
    assert not Message.objects.exists()


def test_a_message_it_cannot_read_is_skipped_with_the_reason_and_the_post_acknowledged(channel, post_webhook):
    value = {"metadata": {"phone_number_id": "106540352242922"}, "messages": [{"type": "text"}]}
    response = post_webhook({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]})
    assert response.status_code == 200
    assert not Message.objects.exists()
    assert "no sender" in WebhookEvent.objects.get().detail


def test_a_number_without_an_active_channel_is_acknowledged_but_not_stored(channel, post_webhook, meta_example):
    payload = meta_example("Text Message")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "unknown-number"

    assert post_webhook(payload).status_code == 200

    assert not Message.objects.exists()
    assert WebhookEvent.objects.get().outcome == Outcome.UNKNOWN_CHANNEL


def test_it_handles_batched_entries_changes_messages_and_statuses(channel, post_webhook, meta_example):
    second = ChannelFactory(phone_number_id="222", app_secret=APP_SECRET)
    first_change = meta_example("Text Message")["entry"][0]["changes"][0]
    image_change = meta_example("Image Message")["entry"][0]["changes"][0]
    image_change["value"]["messages"][0]["id"] = "wamid.image"
    other = json.loads(json.dumps(first_change))
    other["value"]["metadata"]["phone_number_id"] = "222"
    other["value"]["contacts"] = [{"profile": {"name": "Mario Rossi"}, "wa_id": "393331112222"}]
    other["value"]["messages"] = [
        {"from": "393331112222", "id": f"wamid.batch{i}", "timestamp": str(1749416400 + i), "type": "text", "text": {"body": f"msg {i}"}}
        for i in range(5)
    ]
    status_change = {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": channel.phone_number_id},
            "statuses": [{"id": "wamid.unknown-out", "status": "sent", "timestamp": "1749416400", "recipient_id": "1"}],
        },
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [first_change, image_change]}, {"id": "2", "changes": [other, status_change]}],
    }

    assert post_webhook(payload).status_code == 200

    assert Message.objects.count() == 7
    assert Conversation.objects.count() == 2
    mario = Conversation.objects.get(channel=second)
    assert mario.unread_count == 5 and mario.last_message_preview == "msg 4"
    assert mario.profile.profile_name == "Mario Rossi"
    event = WebhookEvent.objects.get()
    assert event.message_count == 7 and event.status_count == 1


def test_a_duplicate_delivery_creates_no_row_and_no_task(channel, post_webhook, meta_example, redis_queue, django_capture_on_commit_callbacks):
    payload = meta_example("Text Message")

    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(payload)
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(payload)  # Meta retries the same delivery
    with django_capture_on_commit_callbacks(execute=True):
        # ... and sometimes the same message inside a different body
        twice = meta_example("Text Message")
        msgs = twice["entry"][0]["changes"][0]["value"]["messages"]
        msgs.append(dict(msgs[0]))
        post_webhook(twice)

    assert Message.objects.count() == 1
    assert Conversation.objects.get().unread_count == 1
    assert len(redis_queue) == 1
    assert redis_queue.task_names() == ["conversations.tasks.inbound_handle"]
    assert redis_queue.task_args() == [[Message.objects.get().pk]]
    assert WebhookEvent.objects.count() == 3


def test_it_queues_one_task_per_new_message_only_after_commit(channel, post_webhook, meta_example, redis_queue, django_capture_on_commit_callbacks):
    payload = meta_example("Text Message")
    payload["entry"][0]["changes"][0]["value"]["messages"] = [
        {"from": "16505551234", "id": f"wamid.q{i}", "timestamp": "1749416383", "type": "text", "text": {"body": str(i)}} for i in range(3)
    ]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_webhook(payload)
        assert len(redis_queue) == 0  # nothing queued before the transaction commits
    for callback in callbacks:
        callback()

    assert sorted(a[0] for a in redis_queue.task_args()) == sorted(Message.objects.values_list("pk", flat=True))


def test_the_webhook_still_answers_200_and_keeps_the_message_when_the_broker_is_down(
    channel, post_webhook, meta_example, django_capture_on_commit_callbacks, broker_down
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(meta_example("Text Message"))

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.handled_at is None  # left for the sweeper


def test_meta_verification_handshake(channel, client):
    ok = client.get("/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.content == b"1158201444"

    wrong = client.get("/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert wrong.status_code == 403
    no_mode = client.get("/webhooks/whatsapp/", {"hub.verify_token": "verify-me", "hub.challenge": "1"})
    assert no_mode.status_code == 403
    empty = client.get("/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"})
    assert empty.status_code == 403


def test_the_verify_token_from_the_environment_is_accepted(db, client, settings):
    settings.WHATSAPP_VERIFY_TOKEN = "from-env"
    ok = client.get("/webhooks/whatsapp/", {"hub.mode": "subscribe", "hub.verify_token": "from-env", "hub.challenge": "42"})
    assert ok.content == b"42"


def test_an_object_other_than_whatsapp_is_acknowledged_and_ignored(channel, post_webhook):
    response = post_webhook({"object": "instagram", "entry": []})

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.IGNORED and event.detail == "nothing to act on: object 'instagram' is not handled"


def test_a_delivery_that_cannot_be_stored_is_answered_500_so_meta_retries_it(channel, post_webhook, meta_example, database_refuses):
    payload = meta_example("Text Message")
    database_refuses(Message, "wamid", payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"])

    response = post_webhook(payload)

    assert (response.status_code, response.content) == (500, b"temporarily unable to store the event")
    assert not Message.objects.exists()
    assert WebhookEvent.objects.get().outcome == Outcome.FAILED


def test_the_answers_are_never_cached_and_other_methods_are_refused(channel, client, post_webhook, meta_example):
    response = post_webhook(meta_example("Text Message"))
    assert "no-cache" in response["Cache-Control"] and response.content == b"ok"

    assert client.put("/webhooks/whatsapp/", data=b"{}").status_code == 405
    assert client.get("/webhooks/whatsapp/").status_code == 403  # a GET is the handshake, and this is none
