"""A customer message claimed and read with everything its turn needs (`conversations.sql.claim`)."""

import pytest
from django.utils import timezone

from conversations import runtime
from conversations.models import LEASE, Message
from conversations.sql import claim as claim_sql

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def claim(message: Message):
    return runtime.run(claim_sql.claim_load, message_id=message.pk, lease=LEASE)


def test_a_claim_takes_the_lease_counts_the_attempt_and_reads_the_message_with_its_rows():
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao")
    before = timezone.now()

    claimed = claim(message)

    assert claimed.message.pk == message.pk and claimed.message.text == "Ciao"
    assert claimed.message.conversation.pk == conversation.pk
    assert claimed.message.conversation.channel.phone_number_id == conversation.channel.phone_number_id
    assert claimed.message.conversation.profile.wa_id == conversation.profile.wa_id
    message.refresh_from_db()
    assert message.attempts == 1 and before + LEASE <= message.locked_until <= timezone.now() + LEASE


def test_the_burst_is_every_unanswered_customer_text_of_the_conversation_by_id():
    conversation = ConversationFactory()
    MessageFactory(conversation=conversation, text="answered", handled_at=timezone.now())
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    MessageFactory(conversation=conversation, type="image", text="")
    MessageFactory(conversation=conversation, direction="out", author="bot", text="a reply")
    MessageFactory(text="another customer's")
    button = MessageFactory(conversation=conversation, type="button", text="Sì")
    last = MessageFactory(conversation=conversation, text="vorrei un preventivo")

    claimed = claim(first)

    assert [(m.pk, m.text) for m in claimed.burst] == [(first.pk, "Buongiorno"), (button.pk, "Sì"), (last.pk, "vorrei un preventivo")]
    assert claimed.burst[0] is claimed.message


@pytest.mark.parametrize(
    "state",
    [
        # Of the time the test runs (a time taken when the tests are collected is long past by then).
        lambda now: {"handled_at": now},
        lambda now: {"locked_until": now + timezone.timedelta(minutes=1)},  # another worker holds it
        lambda now: {"direction": "out", "author": "bot"},
    ],
)
def test_what_is_not_claimable_is_left_as_it_is(state):
    message = MessageFactory(**state(timezone.now()))

    assert claim(message) is None
    assert Message.objects.get(pk=message.pk).attempts == 0


def test_a_lease_that_has_run_out_can_be_claimed_again_and_counts_again():
    message = MessageFactory(locked_until=timezone.now() - timezone.timedelta(seconds=1), attempts=2)

    assert claim(message) is not None
    assert Message.objects.get(pk=message.pk).attempts == 3


def test_the_reply_s_read_does_not_claim():
    message = MessageFactory(text="Ciao", locked_until=timezone.now() + timezone.timedelta(minutes=1))

    loaded = runtime.run(claim_sql.load, message_id=message.pk)

    assert loaded.message.pk == message.pk and [m.pk for m in loaded.burst] == [message.pk]
    assert Message.objects.get(pk=message.pk).attempts == 0
    assert runtime.run(claim_sql.load, message_id=message.pk + 1000) is None
