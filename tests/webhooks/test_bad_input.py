"""One bad item never costs the others: whatever a POST holds it is kept as an event, an item
that cannot be read is skipped with the reason, and the rest is stored and queued — through
the real view and through the WSGI short route, which answer alike.

Through the WSGI entry point they run outside any test transaction (the web process's own
path, with real COMMITs); through the view inside one, its on-commit work run as it ends.
"""

from __future__ import annotations

import json
import time

import pytest

from conversations.models import Conversation, Message
from integrations.meta.signature import sign
from tests.conversations.factories import APP_SECRET
from tests.webhooks.test_wsgi import wsgi_call
from webhooks.models import Outcome, WebhookEvent

pytestmark = pytest.mark.django_db

ENVELOPE = b'{"object": "whatsapp_business_account", "entry": %s}'
SENDER = "16505551234"


def _sender(route: str, client, commits):
    def send(body: bytes, *, signed: bool = True) -> int:
        headers = {"HTTP_X_HUB_SIGNATURE_256": sign(body, APP_SECRET if signed else "forged-secret")}
        if route == "wsgi":
            return wsgi_call("POST", "/webhooks/whatsapp/", body, headers)["status"]
        with commits(execute=True):
            return client.post("/webhooks/whatsapp/", data=body, content_type="application/json", **headers).status_code

    return send


@pytest.fixture(params=["view", pytest.param("wsgi", marks=pytest.mark.django_db(transaction=True))])
def post(request, client, settings, django_capture_on_commit_callbacks):
    """`post(body, signed=True)`: the raw body POSTed as Meta would, by the Django view or by
    the WSGI entry point's short route; the answer's status."""
    settings.SECURE_SSL_REDIRECT = False
    return _sender(request.param, client, django_capture_on_commit_callbacks)


@pytest.fixture
def post_view(client, django_capture_on_commit_callbacks):
    """`post`, by the view only: for what happens after both routes meet (`webhook_answer`)."""
    return _sender("view", client, django_capture_on_commit_callbacks)


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _messages_value(*messages: dict) -> dict:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": SENDER}],
        "messages": list(messages),
    }


def _body(*changes: dict) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "419561257915477", "changes": list(changes)}]}).encode()


def _text(n: int, *, at: int | None = None) -> dict:
    return {"from": SENDER, "id": f"wamid.good{n}", "timestamp": str(at or int(time.time())), "type": "text", "text": {"body": f"text {n}"}}


# --- every POST is kept -----------------------------------------------------------------------

# A body → what the verified POST is answered, and the event's outcome.
BODIES = {
    "one NUL byte": (b"\x00", 400, Outcome.MALFORMED),
    "bytes that are not UTF-8": (b'{"object": "\xff\xfe"}', 400, Outcome.MALFORMED),
    "invalid JSON": (b'{"object": "whatsapp_business_account", "entry": [', 400, Outcome.MALFORMED),
    "JSON nested 2,000 levels deep": (_deep(2000), 400, Outcome.MALFORMED),
    "an envelope nested 2,000 levels deep": (ENVELOPE % _deep(2000), 400, Outcome.MALFORMED),
    "an int where the entry list belongs": (ENVELOPE % b"5", 400, Outcome.MALFORMED),
    "an int where the changes list belongs": (ENVELOPE % b'[{"changes": 5}]', 200, Outcome.PARTIAL),
    "an int where the messages list belongs": (
        _body({"field": "messages", "value": {"metadata": {"phone_number_id": "106540352242922"}, "messages": 5}}), 200, Outcome.PARTIAL
    ),
    "a list where the field name belongs": (ENVELOPE % b'[{"changes": [{"field": ["messages"], "value": {}}]}]', 200, Outcome.IGNORED),
    "a field name holding NUL": (ENVELOPE % b'[{"changes": [{"field": "calls\\u0000", "value": {}}]}]', 200, Outcome.IGNORED),
    "a message nested 900 levels deep": (_body({"field": "messages", "value": _messages_value({**_text(1), "x": json.loads(_deep(900))})}), 200, Outcome.PROCESSED),
    "a number no float holds": (_body({"field": "messages", "value": _messages_value(_text(1))}).replace(b'"type"', b'"n": 1e400, "type"'), 200, Outcome.PROCESSED),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_verified_post_is_kept_whatever_its_body_and_answered_without_a_500(name, channel, post):
    body, status, outcome = BODIES[name]

    assert post(body) == status

    event = WebhookEvent.objects.get()
    assert (event.outcome, event.signature_valid) == (outcome, True)
    assert event.delivered_body == body  # byte for byte: a replay reads what Meta sent
    assert "\x00" not in event.body + event.detail


@pytest.mark.parametrize("name", sorted(BODIES))
def test_an_unverified_post_is_kept_whatever_its_body_and_refused(name, channel, post_view):
    body, _status, _outcome = BODIES[name]

    assert post_view(body, signed=False) == 403

    event = WebhookEvent.objects.get()
    assert (event.outcome, event.signature_valid, event.raw_body) == (Outcome.BAD_SIGNATURE, False, None)
    assert not Message.objects.exists()


def test_a_body_that_is_not_text_keeps_its_bytes_apart_and_a_readable_text(channel, post_view):
    assert post_view(b"\x00\xff") == 400

    event = WebhookEvent.objects.get()
    assert event.body == "\ufffd\ufffd" and bytes(event.raw_body) == b"\x00\xff"


def test_a_body_that_is_text_is_kept_once(channel, post_view):
    body = _body({"field": "messages", "value": _messages_value(_text(1))})

    assert post_view(body) == 200

    event = WebhookEvent.objects.get()
    assert event.body == body.decode() and event.raw_body is None


def test_a_too_deep_part_of_a_message_is_cleared_and_the_message_stored(channel, post_view):
    post_view(BODIES["a message nested 900 levels deep"][0])

    payload = Message.objects.get().payload
    depth = 0
    node = payload["x"]
    while isinstance(node, list) and node:
        node, depth = node[0], depth + 1
    assert node is None and depth < 40


# --- one bad item of six ----------------------------------------------------------------------


def _card_with_a_numeric_phone(message: dict) -> dict:
    message.update(type="contacts", contacts=[{"name": {"formatted_name": "Lucía Gómez"}, "phones": [{"phone": 19835552319}]}])
    del message["text"]
    return message


def _interactive_type_a_list(message: dict) -> dict:
    message.update(type="interactive", interactive={"type": ["button_reply"], "button_reply": {"id": "b", "title": "Cancel"}})
    del message["text"]
    return message


# The list: how the sixth message is made bad, and what becomes of it — stored (the
# bad part made storable) with its text, or skipped with the reason.
BAD = {
    "a text holding a NUL byte": (lambda m: {**m, "text": {"body": "ciao\x00mondo"}}, ("stored", "ciao\ufffdmondo")),
    "a text holding a lone surrogate": (lambda m: {**m, "text": {"body": "ciao\ud800"}}, ("stored", "ciao\ufffd")),
    "a message id of 256 characters": (lambda m: {**m, "id": "w" * 256}, ("skipped", "'id' is longer than 255 characters")),
    "a from of 33 digits": (lambda m: {**m, "from": "3" * 33}, ("skipped", "is not a WhatsApp phone number")),
    "a context.id of 300 characters": (lambda m: {**m, "context": {"id": "c" * 300}}, ("skipped", "'id' is longer than 255 characters")),
    "a contact card whose phone is a number": (_card_with_a_numeric_phone, ("stored", "Lucía Gómez 19835552319")),
    "an interactive.type that is a list": (_interactive_type_a_list, ("stored", "")),
    "a message without id": (lambda m: {k: v for k, v in m.items() if k != "id"}, ("skipped", "no 'id'")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD))
def test_one_bad_message_in_a_batch_of_six_costs_none_of_the_five_good_ones(name, channel, post, redis_queue):
    spoil, (fate, expected) = BAD[name]
    bad = spoil({**_text(6), "id": "wamid.bad"})
    good = [_text(n) for n in range(1, 6)]
    body = json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": _messages_value(*good[:3], bad, *good[3:])}]}]},
        ensure_ascii=True,
    ).encode()  # fmt: skip

    assert post(body) == 200

    stored = {m.wamid: m for m in Message.objects.all()}
    assert {f"wamid.good{n}" for n in range(1, 6)} <= set(stored)
    assert sorted(args[0] for args in redis_queue.task_args()) == sorted(m.pk for m in stored.values())
    event = WebhookEvent.objects.get()
    if fate == "stored":
        assert len(stored) == 6 and stored["wamid.bad"].text == expected
        assert (event.outcome, event.skipped) == (Outcome.PROCESSED, [])
    else:
        assert len(stored) == 5
        assert event.outcome == Outcome.PARTIAL and event.message_count == 5
        [skipped] = event.skipped
        assert skipped["kind"] == "message" and expected in skipped["reason"]
        assert f"1 skipped: message {skipped['id']}".strip() in event.detail and expected in event.detail


def test_a_delivery_whose_only_message_is_skipped_is_acknowledged_and_says_so(channel, post_view):
    assert post_view(_body({"field": "messages", "value": _messages_value({**_text(1), "from": "3" * 33})})) == 200

    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.PARTIAL and not Message.objects.exists()
    assert event.skipped == [{"kind": "message", "id": "wamid.good1", "reason": f"{'3' * 33!r} is not a WhatsApp phone number"}]
    assert event.detail.startswith("0 new message(s), 0 duplicate(s), 0 status(es); 1 skipped: message wamid.good1: ")


def test_only_a_failure_of_the_database_is_answered_5xx(channel, post_view, database_refuses):
    database_refuses(Message, "wamid", "wamid.good2")
    body = _body({"field": "messages", "value": _messages_value(_text(1), _text(2), {**_text(3), "from": "3" * 33})})

    assert post_view(body) == 500

    assert not Message.objects.exists()
    assert WebhookEvent.objects.get().outcome == Outcome.FAILED  # kept, for Meta's retry or a replay


# --- fields the product does not handle -------------------------------------------------------

# Each as Meta's webhook references show it (tests/fixtures/SOURCES.md).
# (`message_template_status_update` is handled now: tests/conversations/test_templates.py.)
FIELDS_NOT_HANDLED = ["calls", "account_update", "a_field_meta_adds_tomorrow"]


@pytest.fixture(scope="module")
def field_examples() -> dict:
    from tests.conftest import FIXTURES

    return json.loads((FIXTURES / "meta" / "webhook-fields-not-handled.json").read_text())


@pytest.mark.parametrize("field", FIELDS_NOT_HANDLED)
def test_a_field_the_product_does_not_handle_is_acknowledged_and_kept_with_its_name(field, field_examples, channel, post_view):
    body = json.dumps(field_examples[field]).encode()

    assert post_view(body) == 200

    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.IGNORED and event.detail == f"nothing to act on: {field}"
    assert event.delivered_body == body and not Message.objects.exists()


def test_a_field_not_handled_beside_messages_is_named_and_the_messages_stored(field_examples, channel, post_view):
    calls = field_examples["calls"]["entry"][0]["changes"][0]
    body = _body({"field": "messages", "value": _messages_value(_text(1))}, calls)

    assert post_view(body) == 200

    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.PROCESSED and event.detail.endswith("; nothing to act on: calls")
    assert Message.objects.count() == 1


# --- late and out of order --------------------------------------------------------------------

DAY = 24 * 60 * 60


def test_a_message_that_arrives_days_late_moves_nothing_of_the_thread_back(channel, post_view, admin_member_client):
    now = int(time.time())
    assert post_view(_body({"field": "messages", "value": _messages_value({**_text(1, at=now - 60), "text": {"body": "new"}})})) == 200
    assert post_view(_body({"field": "messages", "value": _messages_value({**_text(2, at=now - 2 * DAY), "text": {"body": "old"}})})) == 200

    conversation = Conversation.objects.get()
    assert conversation.last_inbound_at.timestamp() == conversation.last_message_at.timestamp() == now - 60
    assert conversation.last_message_preview == "new" and conversation.unread_count == 2
    assert conversation.window_open()
    html = admin_member_client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert "Window closes in" in html and "window is closed" not in html  # the composer is open


# Meta timestamps no message can carry: year 9999 (year 10000 in the console's time zone),
# year 1, the epoch, and 2100.
IMPOSSIBLE_TIMESTAMPS = ["253402300799", "-62135596800", "0", "4102444800"]


@pytest.mark.parametrize("stamp", IMPOSSIBLE_TIMESTAMPS)
def test_an_impossible_timestamp_is_read_as_the_receive_time_and_every_page_shows(stamp, channel, post_view, admin_member_client):
    before = time.time()
    assert post_view(_body({"field": "messages", "value": _messages_value({**_text(1), "timestamp": stamp})})) == 200

    message = Message.objects.get()
    conversation = message.conversation
    assert message.provider_timestamp is None
    assert before - 1 <= conversation.last_inbound_at.timestamp() <= time.time()
    assert before - 1 <= conversation.profile.first_contact_at.timestamp() <= time.time()
    assert admin_member_client.get(f"/console/c/{conversation.pk}/").status_code == 200
    assert admin_member_client.get("/console/").status_code == 200
    assert admin_member_client.get("/admin/profiles/clientprofile/").status_code == 200
    assert admin_member_client.get("/admin/conversations/conversation/").status_code == 200
