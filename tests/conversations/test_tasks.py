"""The Celery entry points (`conversations.tasks`): a turn or a delivery is handed to the
worker's loop (`runtime.dispatch`), or run to its end when the task runs eagerly."""

import pytest

from conversations import runtime, tasks
from conversations.decisions import Outcome
from conversations.models import Message, MessageStatus

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_debounce")]


def test_an_eager_task_runs_the_turn_to_its_end(offline, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    result = tasks.inbound_handle.apply(args=(message.pk,))

    assert result.get() == "sent"
    assert result.get() is Outcome.SENT  # the enum's member, not a bare string equal to it
    assert Message.objects.get(direction="out").status == MessageStatus.SENT
    assert runtime._instance is None  # no worker loop was started for it


def test_a_worker_s_task_hands_the_id_to_the_loop_and_returns(offline, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")
    assert runtime._instance is None
    try:
        submitted = tasks.inbound_handle(message.pk)
        assert submitted == "submitted"
        assert submitted is Outcome.SUBMITTED
        assert runtime.get().drain(10)
    finally:
        assert runtime.shutdown(10)

    assert Message.objects.get(direction="out").status == MessageStatus.SENT
    message.refresh_from_db()
    assert message.handled_at is not None


def test_the_reply_task_answers_the_burst(offline, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    outcome = tasks.agent_reply.apply(args=(message.pk,)).get()
    assert outcome == "sent"
    assert outcome is Outcome.SENT


def test_the_delivery_task_delivers_a_pending_message_and_nothing_else(graph):
    conversation = ConversationFactory()
    pending = MessageFactory(conversation=conversation, direction="out", author="staff", wamid="", status=MessageStatus.PENDING)
    customer = MessageFactory(conversation=conversation, text="Ciao")

    delivered = tasks.message_deliver.apply(args=(pending.pk,)).get()
    skipped = tasks.message_deliver.apply(args=(customer.pk,)).get()
    assert delivered == "sent"
    assert skipped == "skipped"
    assert delivered is Outcome.SENT
    assert skipped is Outcome.SKIPPED
