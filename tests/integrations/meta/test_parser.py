"""Meta's webhook payloads read into `integrations.base.Delivery` (`integrations.meta.parser`),
with Meta's own examples (tests/fixtures/meta/webhook-examples.json)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from integrations.base import Identity, PayloadError
from integrations.meta.parser import parse

PHONE_NUMBER_ID = "106540352242922"
SENDER = "16505551234"

# Meta's example name → (type, text) of the one message it carries.
MESSAGES = {
    "Text Message": ("text", "Does it come in another color?"),
    "Text Message with Context (Product Inquiry)": ("text", "Is this still available?"),
    "Text Message from Click to WhatsApp Ad": ("text", "Hello! Can I get more info on this?"),
    "Reaction Message": ("reaction", "\U0001f44d"),
    "Image Message": ("image", "Taj Mahal"),
    "Location Message": ("location", "Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301"),
    "Contact Sharing Message": ("contacts", "Lucía Gómez +1 (983) 555-2319"),
    "Unsupported Message": ("unsupported", "Message type unknown"),
    "Button Message": ("button", "Unsubscribe"),
    "Interactive List Reply Message": ("interactive", "Priority Mail Express"),
    "Interactive Button Reply Message": ("interactive", "Cancel"),
    "Order Message": ("order", "2 × di9ozbzfi4; 1 × nqryix03ez"),
    "System Message": ("system", "User Sheena Nelson changed from 16505551234 to 12195555358"),
}
GROUP_EVENTS = {
    "Group Create Message": "group_lifecycle_update",
    "Group Settings Update": "group_settings_update",
    "Group Remove Participants": "group_participants_update",
}


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def value_of(payload: dict) -> dict:
    return payload["entry"][0]["changes"][0]["value"]


@pytest.mark.parametrize("example", sorted(MESSAGES))
def test_each_of_metas_message_examples_is_one_message_with_its_type_and_text(example, meta_example):
    payload = meta_example(example)
    raw = value_of(payload)["messages"][0]

    delivery = parse(body(payload))

    assert delivery.statuses == [] and delivery.ignored == []
    [message] = delivery.messages
    assert (message.type, message.text) == MESSAGES[example]
    assert message.phone_number_id == PHONE_NUMBER_ID
    assert message.provider_id == raw["id"] and message.customer.phone == raw["from"]
    assert message.timestamp == datetime.fromtimestamp(int(raw["timestamp"]), tz=timezone.utc)
    assert message.payload == raw  # the provider's object, whole
    assert delivery.phone_number_ids == {PHONE_NUMBER_ID}


def test_the_senders_profile_name_comes_from_the_contacts(meta_example):
    [message] = parse(body(meta_example("Text Message"))).messages

    assert (message.customer.phone, message.profile_name) == (SENDER, "Sheena Nelson")


BSUID, NEW_BSUID, PARENT = "US.13491208655302741918", "US.24817305912873645029", "US.ENT.11815799212886844830"


def test_a_username_users_message_names_its_customer_by_bsuid_and_username(identity_example):
    [message] = parse(body(identity_example("Text Message from a Username User"))).messages

    assert message.customer == Identity(user_id=BSUID, username="@sheena.nelson")
    assert (message.type, message.text, message.profile_name) == ("text", "Does it come in another color?", "Sheena Nelson")


def test_a_message_with_both_identities_carries_all_of_them(identity_example):
    [message] = parse(body(identity_example("Text Message with Phone Number and BSUID"))).messages

    assert message.customer == Identity(phone=SENDER, user_id=BSUID, parent_user_id=PARENT, username="@sheena.nelson")


def test_a_username_users_status_names_its_recipient_by_bsuid(identity_example):
    [status] = parse(body(identity_example("Delivered Status for a Username User"))).statuses

    assert (status.status, status.recipient) == ("delivered", Identity(user_id=BSUID))


def test_a_changed_number_is_an_identity_change_and_its_system_message_is_kept(identity_example):
    delivery = parse(body(identity_example("System Message user_changed_number")))

    [change] = delivery.identity_changes
    assert (change.old, change.new) == (Identity(phone=SENDER, user_id=BSUID), Identity(phone="12195555358", user_id=NEW_BSUID))
    assert change.phone_number_id == PHONE_NUMBER_ID and change.timestamp == datetime.fromtimestamp(1750000300, tz=timezone.utc)
    [message] = delivery.messages
    assert (message.type, message.customer) == ("system", change.old)
    assert delivery.rejected == []


def test_a_changed_bsuid_named_only_in_the_text_is_an_identity_change(identity_example):
    delivery = parse(body(identity_example("System Message user_changed_user_id")))

    [change] = delivery.identity_changes
    assert (change.old, change.new) == (Identity(user_id=BSUID), Identity(user_id=NEW_BSUID))
    assert [m.customer for m in delivery.messages] == [change.old]


def test_metas_older_changed_number_without_bsuids_is_an_identity_change(meta_example):
    [change] = parse(body(meta_example("System Message"))).identity_changes

    assert (change.old, change.new) == (Identity(phone=SENDER), Identity(phone="12195555358"))


def test_an_identity_change_that_does_not_say_whose_is_stored_under_the_new_identity_and_noted(identity_example):
    payload = identity_example("System Message user_changed_user_id")
    value_of(payload)["messages"][0]["system"]["body"] = "User Sheena Nelson changed their user id"

    delivery = parse(body(payload))

    assert delivery.identity_changes == []
    assert [m.customer for m in delivery.messages] == [Identity(user_id=NEW_BSUID)]
    [rejected] = delivery.rejected
    assert rejected.kind == "identity change" and "does not say whose" in rejected.reason


def test_an_identity_change_without_the_new_identity_is_rejected_alone(identity_example):
    payload = identity_example("System Message user_changed_number")
    del value_of(payload)["messages"][0]["system"]["wa_id"], value_of(payload)["messages"][0]["system"]["user_id"]

    delivery = parse(body(payload))

    assert delivery.identity_changes == [] and delivery.messages == []
    assert "without the new identity" in delivery.rejected[0].reason


def test_media_keeps_its_metadata_and_a_caption_is_its_text(meta_example):
    [image] = parse(body(meta_example("Image Message"))).messages

    assert image.media == {
        "id": "1003383421387256",
        "mime_type": "image/jpeg",
        "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
        "caption": "Taj Mahal",
    }


def test_a_reply_carries_the_message_it_answers_and_a_reaction_the_one_it_reacts_to(meta_example):
    [reply] = parse(body(meta_example("Text Message with Context (Product Inquiry)"))).messages
    [reaction] = parse(body(meta_example("Reaction Message"))).messages

    assert reply.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"
    assert reaction.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"


def test_an_edit_names_the_message_it_edits_and_carries_its_new_text(meta_reference):
    """Meta's reference edits an image's caption: the new caption is the edit's text."""
    payload = meta_reference("Edit")
    raw = value_of(payload)["messages"][0]

    [edit] = parse(body(payload)).messages

    assert (edit.type, edit.text, edit.context_id) == ("edit", "Taj Mahal", "wamid.HBgLMTQxMjU1NTA4MjkV...")
    assert edit.provider_id == raw["id"] and edit.customer.phone == SENDER and edit.profile_name == "Sheena Nelson"
    assert edit.timestamp == datetime.fromtimestamp(1739321024, tz=timezone.utc)
    assert edit.media == {}  # the edited message keeps its own media


def test_an_edited_text_is_the_edits_text(meta_reference):
    payload = meta_reference("Edit")
    value_of(payload)["messages"][0]["edit"]["message"] = {"type": "text", "text": {"body": "La mia email è anna@esempio.it"}}

    [edit] = parse(body(payload)).messages

    assert (edit.type, edit.text) == ("edit", "La mia email è anna@esempio.it")


def test_a_revoke_names_the_message_it_deletes(meta_reference):
    [revoke] = parse(body(meta_reference("Revoke"))).messages

    assert (revoke.type, revoke.text, revoke.context_id) == ("revoke", "", "wamid.HBgLMTQxMjU1NTA4MjkV...")


@pytest.mark.parametrize("name", ["Edit", "Revoke"])
def test_an_edit_or_revoke_that_names_no_message_is_rejected_alone(name, meta_reference, meta_example):
    payload = meta_reference(name)
    value = value_of(payload)
    del value["messages"][0][name.lower()]["original_message_id"]
    value["messages"].append(value_of(meta_example("Text Message"))["messages"][0])

    delivery = parse(body(payload))

    assert [m.type for m in delivery.messages] == ["text"]
    assert [(r.kind, r.reason) for r in delivery.rejected] == [("message", "no 'original_message_id'")]


def test_an_ad_click_keeps_its_referral(meta_example):
    [message] = parse(body(meta_example("Text Message from Click to WhatsApp Ad"))).messages

    assert message.referral["source_type"] == "ad" and message.referral["headline"] == "Chat with us"


def test_a_message_without_the_optional_parts_has_empty_ones(meta_example):
    [message] = parse(body(meta_example("Text Message"))).messages

    assert (message.media, message.context_id, message.referral) == ({}, "", {})


@pytest.mark.parametrize("example", sorted(GROUP_EVENTS))
def test_group_events_are_well_formed_and_ignored_by_field(example, meta_example):
    delivery = parse(body(meta_example(example)))

    assert delivery.messages == [] and delivery.statuses == []
    assert delivery.ignored == [GROUP_EVENTS[example]]


def test_statuses_are_read_with_their_errors(meta_example):
    payload = meta_example("Text Message")
    value = value_of(payload)
    del value["messages"], value["contacts"]
    errors = [{"code": 131047, "title": "Re-engagement message", "error_data": {"details": "More than 24 hours"}}]
    value["statuses"] = [
        {"id": "wamid.out1", "status": "delivered", "timestamp": "1750000010", "recipient_id": SENDER},
        {"id": "wamid.out2", "status": "failed", "timestamp": "1750000011", "recipient_id": SENDER, "errors": errors},
    ]

    delivery = parse(body(payload))

    assert delivery.messages == []
    delivered, failed = delivery.statuses
    assert (delivered.phone_number_id, delivered.provider_id, delivered.status, delivered.recipient.phone) == (
        PHONE_NUMBER_ID, "wamid.out1", "delivered", SENDER
    )  # fmt: skip
    assert delivered.timestamp == datetime.fromtimestamp(1750000010, tz=timezone.utc) and delivered.errors == []
    assert failed.errors == errors and failed.payload == value["statuses"][1]


def test_a_status_without_a_readable_timestamp_gets_the_time_it_came(meta_example):
    payload = meta_example("Text Message")
    value = value_of(payload)
    del value["messages"]
    value["statuses"] = [{"id": "wamid.out", "status": "sent", "timestamp": "soon"}]
    before = datetime.now(tz=timezone.utc)

    [status] = parse(body(payload)).statuses

    assert before <= status.timestamp <= datetime.now(tz=timezone.utc)


def test_batched_entries_and_changes_are_all_read_in_order(meta_example):
    first, image = meta_example("Text Message"), meta_example("Image Message")
    other = meta_example("Text Message")
    value_of(other)["metadata"]["phone_number_id"] = "222"
    value_of(other)["messages"][0]["id"] = "wamid.other"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [first["entry"][0]["changes"][0], image["entry"][0]["changes"][0]]},
            {"id": "2", "changes": [other["entry"][0]["changes"][0], meta_example("Group Settings Update")["entry"][0]["changes"][0]]},
        ],
    }

    delivery = parse(body(payload))

    assert [m.type for m in delivery.messages] == ["text", "image", "text"]
    assert [m.phone_number_id for m in delivery.messages] == [PHONE_NUMBER_ID, PHONE_NUMBER_ID, "222"]
    assert delivery.ignored == ["group_settings_update"]
    assert delivery.phone_number_ids == {PHONE_NUMBER_ID, "222"}


def test_keys_and_types_it_does_not_know_are_tolerated(meta_example):
    payload = meta_example("Text Message")
    value = value_of(payload)
    payload["brand_new_top_level"] = True
    value["brand_new_key"] = {"x": 1}
    value["messages"][0]["some_future_field"] = [1, 2]
    value["messages"].append({"from": SENDER, "id": "wamid.future", "timestamp": "1749416390", "type": "hologram", "hologram": {"x": 1}})

    delivery = parse(body(payload))

    assert [(m.type, m.text) for m in delivery.messages] == [("text", "Does it come in another color?"), ("unknown", "")]
    assert delivery.messages[1].payload["hologram"] == {"x": 1}


def test_a_message_without_a_readable_timestamp_has_none(meta_example):
    payload = meta_example("Text Message")
    value_of(payload)["messages"][0]["timestamp"] = "not-a-time"

    assert parse(body(payload)).messages[0].timestamp is None


@pytest.mark.parametrize(
    ("stamp", "readable"),
    [
        ("1230768000", True),  # 2009-01-01: the earliest WhatsApp can have stamped
        ("1230767999", False),
        ("0", False),
        ("-62135596800", False),  # year 1
        ("253402300799", False),  # year 9999: year 10000 in Europe/Rome
        (None, True),  # the time the test runs: "now"
        ("skew", True),  # a few minutes ahead, as clocks differ
        ("ahead", False),
    ],
)
def test_a_timestamp_no_message_can_carry_is_read_as_none(stamp, readable, meta_example):
    now = int(datetime.now(tz=timezone.utc).timestamp())
    stamp = {None: str(now), "skew": str(now + 240), "ahead": str(now + 600)}.get(stamp, stamp)
    payload = meta_example("Text Message")
    value_of(payload)["messages"][0]["timestamp"] = stamp

    timestamp = parse(body(payload)).messages[0].timestamp

    assert (timestamp == datetime.fromtimestamp(int(stamp), tz=timezone.utc)) if readable else timestamp is None


def test_values_no_database_stores_are_made_storable_and_the_message_kept(meta_example):
    payload = meta_example("Text Message")
    message = value_of(payload)["messages"][0]
    deep: list = []
    for _ in range(500):
        deep = [deep]
    message.update(huge=float("inf"), deep=deep)
    message["text"]["body"] = "a\x00b\ud800c"
    raw = json.dumps(payload, allow_nan=True).encode()

    [stored] = parse(raw).messages

    assert stored.text == "a\ufffdb\ufffdc" and stored.payload["huge"] is None
    node, depth = stored.payload["deep"], 0
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert node is None and depth < 40


def test_an_object_other_than_a_business_account_is_ignored_whole():
    delivery = parse(body({"object": "page", "entry": "anything"}))

    assert (delivery.messages, delivery.statuses, delivery.ignored) == ([], [], ["object 'page' is not handled"])


def test_a_messages_change_with_neither_messages_nor_statuses_is_ignored(meta_example):
    payload = meta_example("Text Message")
    value = value_of(payload)
    del value["messages"], value["contacts"]

    assert parse(body(payload)).ignored == ["messages:empty"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"object": "whatsapp_business_account", "entry": [', "not JSON"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b'{"entry": "nope"}', "'entry' list"),
        (b'{"object": "whatsapp_business_account"}', "'entry' list"),
    ],
)
def test_a_body_that_is_not_a_delivery_is_refused_with_the_reason(raw, reason):
    with pytest.raises(PayloadError) as refused:
        parse(raw)

    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"entry": [1]}', "entry without a 'changes' list"),
        (b'{"entry": [{"changes": 5}]}', "entry without a 'changes' list"),
        (b'{"entry": [{"changes": [{"field": "messages"}]}]}', "change without a value object"),
        (b'{"entry": [{"changes": [{"field": "messages", "value": {"messages": []}}]}]}', "without metadata.phone_number_id"),
        (b'{"entry": [{"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "messages": 5}}]}]}', "not a list"),
        (
            b'{"entry": [{"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "messages": [{"type": "text"}]}}]}]}',
            "no sender",
        ),
        (
            b'{"entry": [{"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, "statuses": [{"id": "w"}]}}]}]}',
            "status without 'status'",
        ),
    ],
)
def test_a_part_it_cannot_read_is_rejected_with_the_reason(raw, reason):
    delivery = parse(raw)

    assert delivery.messages == [] and delivery.statuses == []
    [rejected] = delivery.rejected
    assert reason in rejected.reason


# --- user_preferences and pricing ----------------------------------------------------------


def test_metas_user_preferences_example_is_one_marketing_choice_with_its_time(preference_example):
    delivery = parse(body(preference_example("Resume marketing messages")))

    assert delivery.messages == [] and delivery.statuses == [] and delivery.ignored == [] and delivery.rejected == []
    [choice] = delivery.preferences
    assert (choice.phone_number_id, choice.customer.phone, choice.category, choice.value) == (
        PHONE_NUMBER_ID, SENDER, "marketing_messages", "resume"
    )  # fmt: skip
    assert choice.timestamp == datetime.fromtimestamp(1731705721, tz=timezone.utc)
    assert choice.detail == "User requested to resume marketing messages"


def test_a_preference_named_by_bsuid_alone_is_read_and_one_without_a_time_is_rejected(preference_example):
    payload = preference_example("Resume marketing messages")
    value = value_of(payload)
    value["contacts"] = [{"user_id": "US.13491208655302741918", "profile": {"username": "@sheena"}}]
    good = {"user_id": "US.13491208655302741918", "category": "marketing_messages", "value": "STOP", "timestamp": 1731705800}
    value["user_preferences"] = [good, {**good, "timestamp": "yesterday"}, {**good, "value": ""}]

    delivery = parse(body(payload))

    [choice] = delivery.preferences
    assert (choice.customer.user_id, choice.customer.phone, choice.customer.username, choice.value) == (
        "US.13491208655302741918", "", "@sheena", "stop"
    )  # fmt: skip
    assert [r.reason for r in delivery.rejected] == [
        "a preference without a readable 'timestamp'", "a preference without 'category' or 'value'"
    ]  # fmt: skip


def test_a_statuses_pricing_keeps_what_says_the_cost_and_billable_follows_the_type_without_it(pricing_example):
    payload = pricing_example("Statuses with pricing")
    marketing, service = value_of(payload)["statuses"]
    del service["pricing"]["billable"]
    service["pricing"]["price"] = {"nested": "left out"}

    delivered, read = parse(body(payload)).statuses

    assert delivered.pricing == {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
    assert read.pricing == {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    assert delivered.recipient.user_id == "US.13491208655302741918"
