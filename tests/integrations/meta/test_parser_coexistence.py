"""The parser reads the webhooks of a number shared with the WhatsApp Business app: echoes,
past chats and contacts (tests/fixtures/meta/coexistence-examples.json)."""

import json
from datetime import datetime, timezone

from integrations.base import Author, Identity
from integrations.meta.parser import parse

CUSTOMER = Identity(phone="16505551234")
ECHOED = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="


def read(payload: dict):
    return parse(json.dumps(payload).encode())


def test_an_echo_is_the_business_writing_to_the_customer_it_went_to(coexistence_example):
    delivery = read(coexistence_example("Echo: text"))

    [echo] = delivery.messages
    assert echo.author == Author.BUSINESS_APP and not echo.history
    assert echo.customer == CUSTOMER  # `to`, not `from` (the business's own number)
    assert echo.provider_id == ECHOED and echo.type == "text"
    assert echo.text == "Here's the info you requested! https://www.meta.com/quest/quest-3/"
    assert echo.timestamp == datetime.fromtimestamp(1739321024, tz=timezone.utc)
    assert not delivery.rejected and not delivery.ignored


def test_an_echoed_edit_or_revoke_is_read_like_a_customers_with_the_message_it_changes(coexistence_example, meta_example):
    edit = read(coexistence_example("Echo: edit")).messages[0]
    revoke = read(coexistence_example("Echo: revoke")).messages[0]

    assert (edit.type, edit.context_id, edit.author) == ("edit", ECHOED, Author.BUSINESS_APP)
    assert edit.text == "Here's the info you asked for! https://www.meta.com/quest/quest-3/"
    assert (revoke.type, revoke.context_id, revoke.author) == ("revoke", ECHOED, Author.BUSINESS_APP)
    # A customer's revoke, in the `messages` field: the same item but for who wrote it.
    payload = meta_example("Text Message")
    raw = dict(coexistence_example("Echo: revoke")["entry"][0]["changes"][0]["value"]["message_echoes"][0], **{"from": "16505551234"})
    del raw["to"]
    payload["entry"][0]["changes"][0]["value"]["messages"] = [raw]
    customers = read(payload).messages[0]
    assert (customers.type, customers.context_id, customers.author) == ("revoke", ECHOED, Author.CUSTOMER)


def test_a_history_chunk_is_past_messages_of_both_sides_and_where_the_import_stands(coexistence_example):
    delivery = read(coexistence_example("History: phase 0, chunk 1"))

    asked, answered = delivery.messages
    assert asked.history and answered.history
    assert asked.customer == answered.customer == CUSTOMER
    assert asked.author == Author.CUSTOMER and asked.text == "Hi, do you have the headset in stock?"
    assert answered.author == Author.BUSINESS_APP and answered.text == "Yes, we do. Would you like one?"
    [chunk] = delivery.history
    assert (chunk.phase, chunk.chunk_order, chunk.progress, chunk.messages, chunk.error) == (0, 1, 55, 2, "")
    assert chunk.phone_number_id == "106540352242922"


def test_declined_history_is_a_chunk_with_the_reason(coexistence_example):
    delivery = read(coexistence_example("History: declined"))

    assert delivery.messages == []
    [chunk] = delivery.history
    assert chunk.error == "History sharing declined" and chunk.messages == 0


def test_a_past_message_without_a_timestamp_is_rejected_alone(coexistence_example):
    payload = coexistence_example("History: phase 0, chunk 1")
    del payload["entry"][0]["changes"][0]["value"]["history"][0]["threads"][0]["messages"][0]["timestamp"]

    delivery = read(payload)

    assert [m.text for m in delivery.messages] == ["Yes, we do. Would you like one?"]
    assert [r.kind for r in delivery.rejected] == ["message"]
    assert "timestamp" in delivery.rejected[0].reason


def test_contacts_saved_and_removed_in_the_app(coexistence_example):
    [added] = read(coexistence_example("State sync: contact added")).contacts
    [removed] = read(coexistence_example("State sync: contact removed")).contacts

    assert (added.customer, added.action, added.full_name, added.first_name) == (CUSTOMER, "add", "Pablo Morales", "Pablo")
    assert added.timestamp == datetime.fromtimestamp(1739321024, tz=timezone.utc)
    assert (removed.customer, removed.action, removed.full_name) == (CUSTOMER, "remove", "")


def test_a_contact_without_a_number_or_with_an_unknown_action_is_rejected_alone(coexistence_example):
    payload = coexistence_example("State sync: contact added")
    items = payload["entry"][0]["changes"][0]["value"]["state_sync"]
    items.append({"type": "contact", "contact": {"full_name": "Nobody"}, "action": "add"})
    items.append({"type": "contact", "contact": {"phone_number": "393331234567"}, "action": "merge"})
    items.append({"type": "label", "label": {"name": "VIP"}})

    delivery = read(payload)

    assert [c.customer.phone for c in delivery.contacts] == ["16505551234"]
    assert [r.kind for r in delivery.rejected] == ["contact", "contact"]
    assert delivery.ignored == ["state_sync:label"]
