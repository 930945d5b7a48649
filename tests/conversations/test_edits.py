"""A customer edits or deletes a message: Meta's `edit` and `revoke` payloads (from its webhook
reference, tests/fixtures/meta/) replayed through the real webhook view, the turns run as the
worker runs them, against the fake OpenAI and the fake Graph API.

An edit shows on the message it edits (its earlier text kept) and has that message's details
extracted again; a deletion marks it deleted. Neither is a new message for the bot: no reply,
no read receipt, no bubble, nothing unread; a deleted message is never answered. Meta
redelivers out of order, so each holds when it arrives before its message too.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import pytest

from conversations.ingest import delivery_ingest
from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from conversations.selectors import thread_messages
from integrations.base import Author as ItemAuthor
from integrations.base import Delivery, Identity, InboundMessage
from profiles.models import ClientProfile
from profiles.services import profile_field_set

from tests.conversations.factories import UserFactory
from .conftest import MESSAGES_PATH, handle, sent_to_whatsapp

pytestmark = pytest.mark.django_db(transaction=True)

ORIGINAL = "wamid.HBgLMTQxMjU1NTA4MjkV..."  # the message Meta's reference payloads edit and revoke
NOW = int(time.time())
EMAIL = re.compile(r"\S+@\S+\.\w+")


def _message(payload: dict) -> dict:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]


def text(meta_example, body: str, *, wamid: str = ORIGINAL, at: int = NOW - 300) -> dict:
    payload = meta_example("Text Message")
    _message(payload).update(id=wamid, timestamp=str(at), text={"body": body})
    return payload


def edit(meta_reference, body: str, *, wamid: str = "wamid.edit1", at: int = NOW - 120, original: str = ORIGINAL) -> dict:
    """Meta's edit, of a text: the reference's payload with a text message as the new version."""
    payload = meta_reference("Edit")
    message = _message(payload)
    message.update(id=wamid, timestamp=str(at))
    message["edit"].update(original_message_id=original, message={"type": "text", "text": {"body": body}})
    return payload


def revoke(meta_reference, *, wamid: str = "wamid.revoke1", at: int = NOW - 60, original: str = ORIGINAL) -> dict:
    payload = meta_reference("Revoke")
    message = _message(payload)
    message.update(id=wamid, timestamp=str(at))
    message["revoke"]["original_message_id"] = original
    return payload


def run_turns() -> list[str]:
    """Every stored customer message's turn, oldest first, as the worker runs the queued tasks."""
    pks = Message.objects.filter(direction=Direction.INBOUND).order_by("pk").values_list("pk", flat=True)
    return [handle(pk) for pk in pks]


def original() -> Message:
    return Message.objects.get(wamid=ORIGINAL)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def to_meta(graph) -> list[dict]:
    """What the fake Graph API was asked (sends and read receipts; the fake OpenAI shares its server)."""
    return [json.loads(request.get_data()) for request, _ in graph.log if request.path == MESSAGES_PATH]


@pytest.fixture
def emails_extracted(fake_openai):
    """The fake model finds the email address in what the customer wrote."""
    fake_openai.extract = lambda said: {"email": m.group(0)} if (m := EMAIL.search(said)) else {}
    return fake_openai


@pytest.fixture(autouse=True)
def _no_quiet_period(no_debounce):
    """Each text answered by its own turn: one reply per text, easy to count."""


# --- edits ---------------------------------------------------------------------------------------


def test_an_edit_replaces_the_text_keeps_the_earlier_one_and_is_not_a_new_message(
    channel, post_webhook, meta_example, meta_reference, graph, emails_extracted
):
    assert post_webhook(text(meta_example, "Scrivetemi a anna@vecchia.it")).status_code == 200
    assert run_turns() == ["sent"]
    assert sent_to_whatsapp(graph) == [emails_extracted.default_reply]
    conversation = Conversation.objects.get()
    before = (conversation.unread_count, conversation.last_message_preview, conversation.last_inbound_at)
    requests_before = len(to_meta(graph))

    assert post_webhook(edit(meta_reference, "Scrivetemi a anna@nuova.it")).status_code == 200

    message = original()
    assert message.text == "Scrivetemi a anna@nuova.it"
    assert message.earlier_versions == [("Scrivetemi a anna@vecchia.it", at(NOW - 300))]
    assert message.edited_at == at(NOW - 120) and message.deleted_at is None
    conversation.refresh_from_db()
    assert (conversation.unread_count, conversation.last_message_preview, conversation.last_inbound_at) == before
    assert [m.pk for m in thread_messages(conversation_id=conversation.pk).messages] == list(
        conversation.messages.exclude(type="edit").order_by("pk").values_list("pk", flat=True)
    )  # the edit is no bubble of its own

    assert run_turns() == ["skipped", "handled"]  # the original was answered before; the edit is handled, silently

    assert len(to_meta(graph)) == requests_before  # no reply, not even a read receipt
    assert sent_to_whatsapp(graph) == [emails_extracted.default_reply]
    extracted_from = [r["input"][0]["content"] for r in emails_extracted.extraction_requests]
    assert extracted_from == ["Scrivetemi a anna@vecchia.it", "Scrivetemi a anna@nuova.it"]
    profile = ClientProfile.objects.get()
    assert profile.email == "anna@nuova.it"
    assert profile.provenance["email"]["message_id"] == message.pk  # still the message's, as it reads now
    edit_row = Message.objects.get(type="edit")
    assert edit_row.handled_at is not None and edit_row.input_tokens == 1200  # the extraction's cost is the edit's


def test_an_edit_never_replaces_what_staff_set(channel, post_webhook, meta_example, meta_reference, graph, emails_extracted):
    post_webhook(text(meta_example, "Scrivetemi a anna@vecchia.it"))
    run_turns()
    profile = ClientProfile.objects.get()
    profile_field_set(profile=profile, field="email", value="anna@ufficio.it", source="staff", user=UserFactory())

    post_webhook(edit(meta_reference, "Scrivetemi a anna@nuova.it"))
    run_turns()

    assert len(emails_extracted.extraction_requests) == 2  # extracted again, and refused
    profile.refresh_from_db()
    assert profile.email == "anna@ufficio.it" and profile.provenance["email"]["source"] == "staff"


def test_an_edit_that_arrives_before_its_message_applies_when_the_message_does(
    channel, post_webhook, meta_example, meta_reference, graph, emails_extracted
):
    assert post_webhook(edit(meta_reference, "Scrivetemi a anna@nuova.it")).status_code == 200
    assert not Message.objects.exclude(type="edit").exists()
    assert run_turns() == ["handled"]  # nothing to edit yet, nothing said
    assert to_meta(graph) == [] and emails_extracted.extraction_requests == []

    assert post_webhook(text(meta_example, "Scrivetemi a anna@vecchia.it")).status_code == 200

    message = original()
    assert message.text == "Scrivetemi a anna@nuova.it"
    assert message.earlier_versions == [("Scrivetemi a anna@vecchia.it", at(NOW - 300))]
    conversation = Conversation.objects.get()
    assert conversation.unread_count == 1 and conversation.last_message_preview == "Scrivetemi a anna@nuova.it"

    assert run_turns() == ["skipped", "sent"]  # the message is answered once, as it reads now

    assert [r["input"][0]["content"] for r in emails_extracted.extraction_requests] == ["Scrivetemi a anna@nuova.it"]
    assert ClientProfile.objects.get().email == "anna@nuova.it"
    assert len(sent_to_whatsapp(graph)) == 1


def test_edits_that_arrive_out_of_order_leave_the_latest_text(channel, post_webhook, meta_example, meta_reference):
    post_webhook(text(meta_example, "uno"))
    post_webhook(edit(meta_reference, "tre", wamid="wamid.edit2", at=NOW - 100))
    post_webhook(edit(meta_reference, "due", wamid="wamid.edit1", at=NOW - 200))
    post_webhook(edit(meta_reference, "due", wamid="wamid.edit1", at=NOW - 200))  # Meta redelivers

    message = original()
    assert message.text == "tre" and message.edited_at == at(NOW - 100)
    assert [t for t, _ in message.earlier_versions] == ["uno", "due"]
    assert Message.objects.filter(type="edit").count() == 2


def test_an_edit_of_the_latest_message_shows_in_the_conversation_list(channel, post_webhook, meta_example, meta_reference, graph):
    post_webhook(text(meta_example, "Vorrei il modello rosso"))
    revision = Conversation.objects.get().revision

    post_webhook(edit(meta_reference, "Vorrei il modello blu"))

    conversation = Conversation.objects.get()
    assert conversation.last_message_preview == "Vorrei il modello blu" and conversation.revision > revision


def test_the_business_editing_its_own_message_changes_it_and_extracts_nothing(channel, graph, fake_openai):
    """An edit made in the WhatsApp Business app (an echo, Coexistence) of a staff message."""
    customer = Identity(phone="16505551234")

    def item(**fields) -> InboundMessage:
        return InboundMessage(
            phone_number_id=channel.phone_number_id, customer=customer, timestamp=at(NOW - 60), payload={}, **fields
        )

    channels = {channel.phone_number_id: channel}
    delivery_ingest(delivery=Delivery(messages=[item(provider_id="wamid.hello", type="text", text="Ciao")]), channels=channels)
    conversation = Conversation.objects.get()
    staff = Message.objects.create(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, type="text", text="Costa 10 €",
        wamid="wamid.staff1", status=MessageStatus.SENT,
    )  # fmt: skip

    edit = item(provider_id="wamid.staffedit", type="edit", text="Costa 12 €", context_id="wamid.staff1", author=ItemAuthor.BUSINESS_APP)
    delivery_ingest(delivery=Delivery(messages=[edit]), channels=channels)

    staff.refresh_from_db()
    assert staff.text == "Costa 12 €" and [t for t, _ in staff.earlier_versions] == ["Costa 10 €"]
    run_turns()
    assert [r["input"][0]["content"] for r in fake_openai.extraction_requests] == ["Ciao"]  # the customer's text alone
    assert ClientProfile.objects.get().provenance == {}


# --- deletions -----------------------------------------------------------------------------------


def test_a_deleted_message_whose_turn_has_not_run_is_never_answered(
    channel, post_webhook, meta_example, meta_reference, graph, fake_openai
):
    post_webhook(text(meta_example, "Ho sbagliato chat, scusate"))  # its turn is queued, not run yet

    assert post_webhook(revoke(meta_reference)).status_code == 200

    message = original()
    assert message.deleted_at == at(NOW - 60) and message.handled_at is not None
    assert message.text == "Ho sbagliato chat, scusate"  # kept, for staff
    conversation = Conversation.objects.get()
    assert conversation.last_message_preview == "Questo messaggio è stato eliminato"  # in the business's language

    assert run_turns() == ["skipped", "handled"]  # the message's turn finds it handled; the revoke says nothing

    assert to_meta(graph) == [] and fake_openai.calls == []
    assert [m.type for m in thread_messages(conversation_id=conversation.pk).messages] == ["text"]


def test_deleting_an_answered_message_marks_it_deleted_and_says_nothing(
    channel, post_webhook, meta_example, meta_reference, graph, fake_openai
):
    post_webhook(text(meta_example, "Il mio numero è 3331234567"))
    assert run_turns() == ["sent"]
    requests = len(to_meta(graph))

    post_webhook(revoke(meta_reference))
    assert run_turns() == ["skipped", "handled"]

    assert original().deleted_at is not None
    assert len(to_meta(graph)) == requests and len(sent_to_whatsapp(graph)) == 1


def test_a_deletion_that_arrives_before_its_message_deletes_it_on_arrival(
    channel, post_webhook, meta_example, meta_reference, graph, fake_openai
):
    post_webhook(revoke(meta_reference))
    post_webhook(text(meta_example, "Ho sbagliato chat, scusate"))

    assert original().deleted_at == at(NOW - 60)
    assert run_turns() == ["handled", "skipped"]
    assert to_meta(graph) == [] and fake_openai.calls == []


def test_the_bot_forgets_a_deleted_message(channel, post_webhook, meta_example, meta_reference, graph, fake_openai):
    from conversations.services.memory import latest_texts

    post_webhook(text(meta_example, "Il mio codice fiscale è RSSMRA80A01H501U"))
    post_webhook(revoke(meta_reference))
    post_webhook(text(meta_example, "Buongiorno", wamid="wamid.later", at=NOW - 30))

    later = Message.objects.get(wamid="wamid.later")
    assert latest_texts(conversation_id=later.conversation_id, before_id=later.pk + 1, limit=10) == [
        (True, later.created_at, "Buongiorno")
    ]
