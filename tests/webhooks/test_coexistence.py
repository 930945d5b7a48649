"""A number shared by the WhatsApp Business app and the product (coexistence), through the real
webhook view: what the owner writes in the app (echoes), past chats (history) and the names
the owner saved (contacts), replayed as Meta's references shape them."""

import pytest

from conversations.ingest import HANDOFF_BUSINESS_APP
from conversations.models import Conversation, Message, MessageStatus, Origin, Owner
from conversations.selectors import thread_messages
from conversations.services.memory import latest_texts
from profiles.models import BUSINESS_APP, ClientProfile, FieldSource, ProfileFieldChange
from profiles.services import profile_field_set
from webhooks.models import Outcome, WebhookEvent

from tests.conversations.conftest import graph, handle, sent_to_whatsapp  # noqa: F401 (graph: the fake Meta, a fixture)
from tests.conversations.factories import UserFactory

CUSTOMER = "16505551234"
ECHO_TEXT = "Here's the info you requested! https://www.meta.com/quest/quest-3/"


@pytest.fixture
def post(channel, post_webhook, django_capture_on_commit_callbacks):
    """POST a body, its on-commit work (the turns' queueing) done; 200 expected."""

    def send(payload):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_webhook(payload)
        assert response.status_code == 200
        return WebhookEvent.objects.latest("pk")

    return send


# --- Echoes ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_echo_is_a_staff_message_from_the_app_and_the_conversation_goes_to_a_person(post, coexistence_example, redis_queue):
    event = post(coexistence_example("Echo: text"))

    echo = Message.objects.get()
    assert (echo.direction, echo.author, echo.status, echo.origin) == ("out", "staff", MessageStatus.SENT, Origin.BUSINESS_APP)
    assert echo.text == ECHO_TEXT and echo.sent_by is None
    assert echo.sent_at.timestamp() == 1739321024 and echo.handled_at is not None
    conversation = echo.conversation
    assert conversation.profile.wa_id == CUSTOMER
    assert conversation.owner == Owner.HUMAN and conversation.assigned_to is None  # in the human queue
    assert conversation.handoff_reason == HANDOFF_BUSINESS_APP and conversation.handoff_at is not None
    assert conversation.last_inbound_at is None and conversation.unread_count == 0  # no window, nothing unread
    assert conversation.last_message_preview == ECHO_TEXT
    assert len(redis_queue) == 0  # no turn for the business's own message
    assert event.outcome == Outcome.PROCESSED and event.message_count == 1


@pytest.mark.django_db
def test_an_echo_leaves_a_conversation_a_person_has_with_that_person(post, coexistence_example, meta_example):
    text = meta_example("Text Message")
    post(text)
    anna = UserFactory(username="anna")
    Conversation.objects.update(owner=Owner.HUMAN, assigned_to=anna, handoff_reason="The customer asked for a person.")
    echo = coexistence_example("Echo: text")
    # The owner answers after the customer wrote (a thread's latest message never moves back).
    written = int(text["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"])
    echo["entry"][0]["changes"][0]["value"]["message_echoes"][0]["timestamp"] = str(written + 60)

    post(echo)

    conversation = Conversation.objects.get()
    assert conversation.assigned_to == anna and conversation.handoff_reason == "The customer asked for a person."
    assert conversation.unread_count == 1 and conversation.last_message_preview == ECHO_TEXT


@pytest.mark.django_db
def test_an_echo_delivered_twice_is_stored_once(post, coexistence_example):
    post(coexistence_example("Echo: text"))
    post(coexistence_example("Echo: text"))

    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_after_an_echo_the_bot_stays_silent_when_the_customer_writes(post, coexistence_example, meta_example, graph, offline, redis_queue):
    post(coexistence_example("Echo: text"))
    post(meta_example("Text Message"))

    text = Message.objects.get(direction="in")
    assert redis_queue.task_args() == [[text.pk]]  # the customer's message gets its turn...
    assert handle(text.pk) == "handled"  # ...which leaves it to a person (read receipt only)

    assert sent_to_whatsapp(graph) == []
    assert list(Message.objects.filter(direction="out").values_list("origin", flat=True)) == [Origin.BUSINESS_APP]
    conversation = Conversation.objects.get()
    assert conversation.owner == Owner.HUMAN and conversation.window_open(text.provider_timestamp)


# --- History --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_history_chunk_is_imported_with_no_turn_no_window_and_nothing_unread(post, coexistence_example, redis_queue):
    event = post(coexistence_example("History: phase 0, chunk 1"))

    asked, answered = Message.objects.order_by("provider_timestamp")
    assert (asked.direction, asked.author, asked.status, asked.origin) == ("in", "customer", MessageStatus.RECEIVED, Origin.HISTORY)
    assert asked.handled_at is not None  # nothing for the bot or the sweeper to pick up
    assert (answered.direction, answered.author, answered.status, answered.origin) == ("out", "staff", MessageStatus.SENT, Origin.HISTORY)
    conversation = asked.conversation
    assert conversation.last_inbound_at is None and conversation.unread_count == 0
    assert conversation.owner == Owner.BOT  # past chats hand nothing over
    assert conversation.last_message_at == answered.provider_timestamp
    assert conversation.last_message_preview == "Yes, we do. Would you like one?"
    assert len(redis_queue) == 0
    assert event.outcome == Outcome.PROCESSED
    assert "history phase 0, chunk 1, 55% done, 2 message(s)" in event.detail


@pytest.mark.django_db
def test_chunks_in_any_order_and_replayed_are_imported_once_and_read_in_time_order(post, coexistence_example, meta_example, redis_queue):
    post(meta_example("Text Message"))  # a customer wrote after onboarding, before the import
    live = Message.objects.get()
    redis_queue.client.delete("celery")

    post(coexistence_example("History: phase 0, chunk 1"))
    post(coexistence_example("History: phase 1, chunk 2"))  # older messages, later
    post(coexistence_example("History: phase 0, chunk 1"))  # Meta retries
    post(coexistence_example("History: phase 1, chunk 2"))

    assert Message.objects.count() == 5
    thread = thread_messages(conversation_id=live.conversation_id)
    assert [m.text for m in thread.messages] == [
        "Are you open on Sundays?", "Only in December, from 10 to 13.",
        "Hi, do you have the headset in stock?", "Yes, we do. Would you like one?",
        "Does it come in another color?",
    ]  # fmt: skip
    conversation = Conversation.objects.get()
    # The live message still has the thread: its window, its preview, its unread count.
    assert conversation.last_inbound_at == live.provider_timestamp == conversation.last_message_at
    assert conversation.last_message_preview == "Does it come in another color?" and conversation.unread_count == 1
    assert len(redis_queue) == 0
    # What the agent remembers reads the same way: the past chats, then the live message.
    remembered = latest_texts(conversation_id=live.conversation_id, before_id=live.pk + 1, limit=10)
    assert [text for _customer, _at, text in remembered] == [m.text for m in thread.messages]
    assert [text for _customer, _at, text in latest_texts(conversation_id=live.conversation_id, before_id=live.pk + 1, limit=2)] == [
        "Yes, we do. Would you like one?", "Does it come in another color?",
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_console_pages_through_the_live_part_into_the_imported_part(post, coexistence_example, meta_example):
    post(coexistence_example("History: phase 1, chunk 2"))
    post(coexistence_example("History: phase 0, chunk 1"))
    post(meta_example("Text Message"))
    conversation_id = Conversation.objects.get().pk

    pages, before = [], None
    while True:
        page = thread_messages(conversation_id=conversation_id, before_id=before, limit=2)
        pages.insert(0, [m.text for m in page.messages])
        if not page.has_older:
            break
        before = page.oldest_id

    assert pages == [
        ["Are you open on Sundays?"],
        ["Only in December, from 10 to 13.", "Hi, do you have the headset in stock?"],
        ["Yes, we do. Would you like one?", "Does it come in another color?"],
    ]
    newest = thread_messages(conversation_id=conversation_id).newest_id
    assert thread_messages(conversation_id=conversation_id, after_id=newest).messages == []  # the poll: live only


@pytest.mark.django_db
def test_declined_history_is_recorded_on_its_event(post, coexistence_example):
    event = post(coexistence_example("History: declined"))

    assert not Message.objects.exists()
    assert event.outcome == Outcome.PROCESSED
    assert "history declined: History sharing declined, 0 message(s)" in event.detail


# --- Contacts -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_contact_saved_in_the_app_names_the_customer_for_staff(post, coexistence_example, meta_example):
    post(meta_example("Text Message"))

    post(coexistence_example("State sync: contact added"))

    profile = ClientProfile.objects.get()
    assert (profile.first_name, profile.last_name, profile.display_name) == ("Pablo", "Morales", "Pablo Morales")
    assert profile.profile_name == "Sheena Nelson"  # the customer's own WhatsApp name is kept beside it
    for field in ("first_name", "last_name"):
        assert profile.provenance[field]["source"] == FieldSource.SYSTEM
        assert profile.provenance[field]["origin"] == BUSINESS_APP
    changes = ProfileFieldChange.objects.order_by("field")
    assert [(c.field, c.old_value, c.new_value, c.source) for c in changes] == [
        ("first_name", "", "Pablo", FieldSource.SYSTEM), ("last_name", "", "Morales", FieldSource.SYSTEM)
    ]


@pytest.mark.django_db
def test_a_staff_edit_is_kept_and_a_removal_clears_only_what_the_app_set(post, coexistence_example, meta_example):
    post(meta_example("Text Message"))
    profile = ClientProfile.objects.get()
    profile_field_set(profile=profile, field="first_name", value="Paolo", source=FieldSource.STAFF, user=UserFactory())

    post(coexistence_example("State sync: contact added"))
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name) == ("Paolo", "Morales")

    post(coexistence_example("State sync: contact removed"))
    profile.refresh_from_db()
    assert (profile.first_name, profile.last_name) == ("Paolo", "")
    assert profile.provenance["first_name"]["source"] == FieldSource.STAFF


@pytest.mark.django_db(transaction=True)
def test_a_saved_contact_not_known_yet_gets_a_profile_its_first_message_joins(post, coexistence_example, meta_example):
    # Outside a test's transaction: the delivery's own pipelined transaction, as in production.
    post(coexistence_example("State sync: contact added"))
    profile = ClientProfile.objects.get()
    assert (profile.wa_id, profile.display_name, profile.first_contact_at) == (CUSTOMER, "Pablo Morales", None)
    assert not Conversation.objects.exists()  # an address book is not a list of conversations

    post(meta_example("Text Message"))

    conversation = Conversation.objects.get()
    assert conversation.profile == profile
    assert str(conversation.profile) == "Pablo Morales"
    assert ClientProfile.objects.get().first_contact_at == Message.objects.get().provider_timestamp
