"""Customers as identity sets, through `POST /webhooks/whatsapp/`: a customer Meta knows only by
its BSUID and username is stored like any other, an identity learned later joins the customer
it belongs to, and a changed number or BSUID moves the customer, never splits it. Payloads:
tests/fixtures/meta/identity-examples.json."""

import pytest

from conversations.models import Conversation, Message, MessageStatus, StatusUpdate
from profiles.models import ClientProfile
from webhooks.models import Outcome, WebhookEvent

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

BSUID, NEW_BSUID, PARENT = "US.13491208655302741918", "US.24817305912873645029", "US.ENT.11815799212886844830"
PHONE, NEW_PHONE = "16505551234", "12195555358"


def messages_of(payload: dict) -> list[dict]:
    return payload["entry"][0]["changes"][0]["value"]["messages"]


def text_from(identity_example, *, wamid: str, phone: str = "", user_id: str = "", body: str = "Ciao") -> dict:
    """A text of the customer named by `phone` and/or `user_id` (Meta leaves out what it does not share)."""
    payload = identity_example("Text Message with Phone Number and BSUID")
    value = payload["entry"][0]["changes"][0]["value"]
    contact, message = value["contacts"][0], value["messages"][0]
    del contact["parent_user_id"], message["from_parent_user_id"]
    for fields, key, identity in (
        (contact, "wa_id", phone), (message, "from", phone), (contact, "user_id", user_id), (message, "from_user_id", user_id),
    ):  # fmt: skip
        if identity:
            fields[key] = identity
        else:
            del fields[key]
    message["id"], message["text"]["body"] = wamid, body
    return payload


def the_one_customer() -> ClientProfile:
    [profile] = ClientProfile.objects.all()
    [conversation] = Conversation.objects.all()
    assert conversation.profile == profile
    return profile


def test_a_username_users_message_is_stored_under_one_customer_known_by_its_bsuid(channel, post_webhook, identity_example):
    response = post_webhook(identity_example("Text Message from a Username User"))

    assert response.status_code == 200
    profile = the_one_customer()
    assert (profile.wa_id, profile.user_id, profile.username, profile.key) == ("", BSUID, "@sheena.nelson", BSUID)
    assert profile.profile_name == "Sheena Nelson" and profile.handle == "@sheena.nelson"
    message = Message.objects.get()
    assert message.text == "Does it come in another color?" and message.conversation.channel == channel
    assert WebhookEvent.objects.get().outcome == Outcome.PROCESSED


def test_a_username_users_status_is_stored_and_applied(channel, post_webhook, identity_example):
    conversation = ConversationFactory(channel=channel, profile__username_only=True, profile__user_id=BSUID)
    payload = identity_example("Delivered Status for a Username User")
    wamid = payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    MessageFactory(conversation=conversation, direction="out", author="bot", wamid=wamid, status=MessageStatus.SENT)

    response = post_webhook(payload)

    assert response.status_code == 200
    status = StatusUpdate.objects.get()
    assert (status.wamid, status.status, status.recipient_id) == (wamid, "delivered", BSUID)
    assert Message.objects.get(wamid=wamid).status == MessageStatus.DELIVERED
    assert WebhookEvent.objects.get().outcome == Outcome.PROCESSED
    assert ClientProfile.objects.count() == 1 and Conversation.objects.count() == 1


def test_a_phone_number_learned_later_joins_the_same_customer_and_conversation(channel, post_webhook, identity_example):
    assert post_webhook(identity_example("Text Message from a Username User")).status_code == 200
    assert post_webhook(identity_example("Text Message with Phone Number and BSUID")).status_code == 200

    profile = the_one_customer()
    assert (profile.wa_id, profile.user_id, profile.parent_user_id, profile.username) == (PHONE, BSUID, PARENT, "@sheena.nelson")
    assert profile.handle == f"+{PHONE}" and Message.objects.count() == 2


def test_a_bsuid_learned_later_joins_the_customer_known_by_its_number(channel, post_webhook, identity_example):
    """A customer from before BSUIDs, then the same with both, then without its number."""
    for payload in (
        text_from(identity_example, wamid="wamid.phone-only", phone=PHONE),
        text_from(identity_example, wamid="wamid.both", phone=PHONE, user_id=BSUID),
        identity_example("Text Message from a Username User"),
    ):
        assert post_webhook(payload).status_code == 200

    profile = the_one_customer()
    assert (profile.wa_id, profile.user_id, profile.key) == (PHONE, BSUID, PHONE)
    assert Message.objects.count() == 3


def test_a_changed_bsuid_moves_the_customer_and_its_next_messages_join_the_same_thread(channel, post_webhook, identity_example):
    assert post_webhook(identity_example("Text Message from a Username User")).status_code == 200

    assert post_webhook(identity_example("System Message user_changed_user_id")).status_code == 200
    assert post_webhook(text_from(identity_example, wamid="wamid.after", user_id=NEW_BSUID)).status_code == 200

    profile = the_one_customer()
    assert (profile.user_id, profile.key, profile.username) == (NEW_BSUID, BSUID, "@sheena.nelson")
    assert list(Message.objects.order_by("pk").values_list("type", flat=True)) == ["text", "system", "text"]
    assert WebhookEvent.objects.order_by("pk")[1].outcome == Outcome.PROCESSED


def test_a_changed_bsuid_named_as_meta_names_it_since_august_2026_moves_the_customer(channel, post_webhook, identity_example):
    # Meta's changelog of 2026-08-11: the previous BSUID in system.previous_user_id, the body
    # no longer the only place that names it.
    assert post_webhook(text_from(identity_example, wamid="wamid.before", user_id=BSUID)).status_code == 200
    change = identity_example("System Message user_changed_user_id")
    system = messages_of(change)[0]["system"]
    system.update(body="User Sheena Nelson changed their WhatsApp user id", previous_user_id=BSUID)

    assert post_webhook(change).status_code == 200
    assert post_webhook(text_from(identity_example, wamid="wamid.after", user_id=NEW_BSUID)).status_code == 200

    profile = the_one_customer()
    assert (profile.user_id, profile.key) == (NEW_BSUID, BSUID)
    assert Conversation.objects.count() == 1


def test_a_changed_number_moves_the_customer_and_its_next_messages_join_the_same_thread(channel, post_webhook, identity_example):
    assert post_webhook(identity_example("Text Message with Phone Number and BSUID")).status_code == 200

    assert post_webhook(identity_example("System Message user_changed_number")).status_code == 200
    later = text_from(identity_example, wamid="wamid.new-number", phone=NEW_PHONE, user_id=NEW_BSUID)
    assert post_webhook(later).status_code == 200

    profile = the_one_customer()
    assert (profile.wa_id, profile.user_id, profile.key) == (NEW_PHONE, NEW_BSUID, BSUID)
    assert Message.objects.count() == 3


def test_metas_older_changed_number_moves_a_customer_known_only_by_its_number(channel, post_webhook, meta_example):
    text = meta_example("Text Message")
    assert post_webhook(text).status_code == 200

    assert post_webhook(meta_example("System Message")).status_code == 200
    later = meta_example("Text Message")
    later["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = NEW_PHONE
    later["entry"][0]["changes"][0]["value"]["messages"][0].update({"from": NEW_PHONE, "id": "wamid.from-the-new-number"})
    assert post_webhook(later).status_code == 200

    profile = the_one_customer()
    assert (profile.wa_id, profile.key) == (NEW_PHONE, PHONE) and Message.objects.count() == 3


def test_a_change_and_messages_in_the_same_post_land_on_one_customer(channel, post_webhook, identity_example):
    """The change is applied before the POST's messages find their customer: a text the
    customer wrote before it (old BSUID) and one after it (new BSUID) join the same thread."""
    assert post_webhook(identity_example("Text Message from a Username User")).status_code == 200
    payload = identity_example("System Message user_changed_user_id")
    before = messages_of(text_from(identity_example, wamid="wamid.before", user_id=BSUID, body="prima"))[0]
    after = messages_of(text_from(identity_example, wamid="wamid.after", user_id=NEW_BSUID, body="dopo"))[0]
    messages_of(payload)[:0] = [before]
    messages_of(payload).append(after)
    payload["entry"][0]["changes"][0]["value"]["contacts"] = [{"profile": {"name": "Sheena Nelson"}, "user_id": NEW_BSUID}]

    assert post_webhook(payload).status_code == 200

    profile = the_one_customer()
    assert profile.user_id == NEW_BSUID
    system = messages_of(payload)[1]["system"]["body"]
    assert list(Message.objects.order_by("pk").values_list("text", flat=True))[1:] == ["prima", system, "dopo"]


def test_a_change_for_a_customer_never_seen_stores_its_message_under_the_new_identity(channel, post_webhook, identity_example):
    assert post_webhook(identity_example("System Message user_changed_number")).status_code == 200

    profile = the_one_customer()
    assert (profile.wa_id, profile.user_id) == (NEW_PHONE, NEW_BSUID)


def test_a_changed_identity_another_customer_holds_is_not_taken(channel, post_webhook, identity_example):
    """Two stored customers stay two (the unique identities are never given to both): the
    number stays with the customer that has it, the BSUID moves."""
    assert post_webhook(text_from(identity_example, wamid="wamid.a", phone=PHONE, user_id=BSUID)).status_code == 200
    assert post_webhook(text_from(identity_example, wamid="wamid.b", phone=NEW_PHONE)).status_code == 200

    assert post_webhook(identity_example("System Message user_changed_number")).status_code == 200

    moved = ClientProfile.objects.get(key=BSUID)
    assert (moved.user_id, moved.wa_id) == (NEW_BSUID, "")
    assert ClientProfile.objects.get(key=NEW_PHONE).wa_id == NEW_PHONE


def test_every_lookup_of_a_customer_by_identity_uses_the_identity_indexes(channel):
    """The phone number and BSUID are unique where known (partial indexes): a lookup that
    does not repeat the index's condition scans every profile, once per customer of every
    delivery (it cut the webhook's throughput by half on 15,000 customers)."""
    from django.db import connection

    from conversations.sql import ingest as ingest_sql

    statements = {
        "a message's customer": (
            f"SELECT {ingest_sql.profile_key_of('g')} FROM jsonb_to_recordset(%s::jsonb) AS g(key text, wa_id text, user_id text)",
            ['[{"key": "x", "wa_id": "1", "user_id": "IT.1"}]'],
        ),
        "an identity change": (
            ingest_sql._identity_move_sql(),
            {"old_phone": "1", "old_user_id": "IT.1", "new_phone": "2", "new_user_id": "IT.2", "new_parent_user_id": "",
             "new_username": "", "now": "2026-11-30T00:00:00Z"},
        ),
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        for name, (sql, params) in statements.items():
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on profiles_clientprofile" not in plan, name
