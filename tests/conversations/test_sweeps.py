"""The beat's sweepers (`services.sweeps`): the database, not the queue, is the record of what
is left to do. What was stored and not handled (or not sent) is queued again once its lease
has run out; what keeps failing is surfaced instead of queued forever."""

import psycopg
import pytest
from django.utils import timezone

from conversations.models import Conversation, Message, MessageStatus, Owner
from conversations.services import sweeps
from conversations.services.outbound import message_send
from conversations.sql import reply as reply_sql

from tests.conversations.factories import ConversationFactory, MessageFactory
from .conftest import handle

pytestmark = pytest.mark.django_db(transaction=True)

INBOUND_HANDLE = "conversations.tasks.inbound_handle"
MESSAGE_DELIVER = "conversations.tasks.message_deliver"


def ago(**delta):
    return timezone.now() - timezone.timedelta(**delta)


def lease_runs_out(message: Message) -> None:
    Message.objects.filter(pk=message.pk).update(locked_until=ago(seconds=1))


def test_the_sweeper_queues_only_old_unhandled_unclaimed_messages(redis_queue, settings):
    settings.INBOUND_SWEEP_AFTER_SECONDS = 60
    old = ago(minutes=2)
    stale = MessageFactory(created_at=old)
    MessageFactory(created_at=timezone.now())  # too recent: its task is probably on the way
    MessageFactory(created_at=old, handled_at=timezone.now())  # done
    MessageFactory(created_at=old, locked_until=timezone.now() + timezone.timedelta(minutes=3))  # being worked on
    expired = MessageFactory(created_at=old, locked_until=ago(seconds=1))  # worker died

    assert sweeps.inbound_sweep() == 2

    assert sorted(a[0] for a in redis_queue.task_args()) == sorted([stale.pk, expired.pk])
    assert set(redis_queue.task_names()) == {INBOUND_HANDLE}


def test_the_sweeper_queues_pending_outbound_messages(redis_queue):
    conversation = ConversationFactory()
    old = message_send(conversation=conversation, text="hello")
    Message.objects.filter(pk=old.pk).update(created_at=ago(minutes=5))
    message_send(conversation=conversation, text="just now")
    redis_queue_before = len(redis_queue)  # each send queued its own delivery

    assert sweeps.outbound_sweep() == 1
    assert len(redis_queue) == redis_queue_before + 1
    assert redis_queue.task_names()[0] == MESSAGE_DELIVER and redis_queue.task_args()[0] == [old.pk]


def test_an_outbound_message_out_of_attempts_is_marked_failed_not_queued(redis_queue, settings):
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 3
    conversation = ConversationFactory()
    message = MessageFactory(
        conversation=conversation, direction="out", author="staff", wamid="", status=MessageStatus.PENDING, attempts=3, created_at=ago(minutes=5)
    )

    assert sweeps.outbound_sweep() == 0

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.error_code == "undelivered" and message.failed_at
    assert message.error_title == "Not delivered, attempts made: 3"  # a msgid and its detail (conversations.texts)
    assert len(redis_queue) == 0


def test_a_stored_message_is_picked_up_by_the_sweeper_after_a_broker_outage(graph, post_webhook, channel, meta_example, broker_down):
    assert post_webhook(meta_example("Image Message")).status_code == 200
    inbound = Message.objects.get()
    assert inbound.handled_at is None  # stored; its task could not be queued
    Message.objects.filter(pk=inbound.pk).update(created_at=ago(minutes=2))

    assert sweeps.inbound_sweep() == 0  # the broker is still down: nothing queued, nothing raised
    # The sweeper's query finds it; handling it then answers as usual.
    swept = list(Message.objects.filter(direction="in", handled_at__isnull=True, created_at__lte=ago(seconds=60)))
    assert swept == [inbound]
    assert handle(inbound.pk) == "acknowledged"
    assert Message.objects.filter(direction="out").count() == 1


def test_a_turn_that_keeps_failing_is_retried_a_bounded_number_of_times_then_surfaced(offline, graph, redis_queue, settings, monkeypatch, caplog):
    settings.TURN_MAX_ATTEMPTS = 3
    settings.REPLY_DEBOUNCE_SECONDS = 0

    async def commit(c):
        raise psycopg.OperationalError("the database went away at the end of the turn")

    monkeypatch.setattr(reply_sql, "commit", commit)
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao", created_at=ago(minutes=5))

    for attempt in range(1, settings.TURN_MAX_ATTEMPTS + 1):
        assert sweeps.inbound_sweep() == 1  # queued again...
        with pytest.raises(psycopg.OperationalError):
            handle(message.pk)  # ...and failing again
        message.refresh_from_db()
        assert message.attempts == attempt and message.handled_at is None
        assert sweeps.inbound_sweep() == 0  # not while the failed turn's lease holds
        lease_runs_out(message)

    assert redis_queue.task_names() == [INBOUND_HANDLE] * settings.TURN_MAX_ATTEMPTS
    assert sweeps.inbound_sweep() == 0  # out of attempts: surfaced, not queued again

    assert redis_queue.task_names() == [INBOUND_HANDLE] * settings.TURN_MAX_ATTEMPTS
    message.refresh_from_db()
    assert message.handled_at is not None and message.locked_until is None
    assert message.error_code == "turn_failed" and message.error_title == "The bot could not handle a message: a person should answer."
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_at is not None
    assert conversation.handoff_reason == "The bot could not handle a message: a person should answer."
    assert not Message.objects.filter(direction="out").exists()  # the customer was told nothing wrong
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"message {message.pk} (conversation {conversation.pk}): {conversation.handoff_reason} (3 attempts)" in errors
    assert handle(message.pk) == "skipped"
    assert sweeps.inbound_sweep() == 0


def test_a_message_surfaced_meanwhile_by_another_sweeper_is_surfaced_once(settings):
    settings.TURN_MAX_ATTEMPTS = 2
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, created_at=ago(minutes=5), attempts=2)
    revision = Conversation.objects.get(pk=conversation.pk).revision

    sweeps.inbound_surface(message=message)
    sweeps.inbound_surface(message=message)

    assert Conversation.objects.get(pk=conversation.pk).revision == revision + 1


def test_a_message_surfaced_in_a_conversation_a_person_owns_keeps_their_hand_off(settings):
    settings.TURN_MAX_ATTEMPTS = 2
    handed_at = ago(minutes=30)
    conversation = ConversationFactory(owner=Owner.HUMAN, handoff_reason="The customer asked for a person.", handoff_at=handed_at)
    message = MessageFactory(conversation=conversation, created_at=ago(minutes=5), attempts=2)

    sweeps.inbound_surface(message=message)

    conversation.refresh_from_db()
    assert conversation.handoff_reason == "The customer asked for a person." and conversation.handoff_at == handed_at
    message.refresh_from_db()
    assert message.error_code == "turn_failed" and message.handled_at is not None


def test_a_turn_whose_claim_keeps_failing_is_bounded_too(redis_queue, settings, monkeypatch, caplog):
    # The claim counts the attempt in its own statement: when that statement fails, the
    # count goes with it, and the turn counts it on its own.
    settings.TURN_MAX_ATTEMPTS = 3
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Ciao", created_at=ago(minutes=5))

    async def claim_load(*, message_id, lease, **_):
        assert message_id == message.pk
        raise psycopg.errors.InvalidSqlStatementName('prepared statement "_pg3_0" does not exist')

    monkeypatch.setattr("conversations.sql.claim.claim_load", claim_load)

    for attempt in range(1, settings.TURN_MAX_ATTEMPTS + 1):
        assert sweeps.inbound_sweep() == 1  # queued again...
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            handle(message.pk)  # ...and its claim failing again
        message.refresh_from_db()
        assert message.attempts == attempt and message.handled_at is None and message.locked_until is None

    assert redis_queue.task_names() == [INBOUND_HANDLE] * settings.TURN_MAX_ATTEMPTS
    assert sweeps.inbound_sweep() == 0  # out of attempts: surfaced, not queued again
    assert redis_queue.task_names() == [INBOUND_HANDLE] * settings.TURN_MAX_ATTEMPTS
    message.refresh_from_db()
    assert message.handled_at is not None and message.error_code == "turn_failed"
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_at is not None
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    claims = [r for r in errors if r.name == "conversations.turn" and "the claim failed (attempt counted)" in r.getMessage()]
    assert len(claims) == settings.TURN_MAX_ATTEMPTS
    assert any(r.name == "conversations.services.sweeps" and "a person should answer" in r.getMessage() for r in errors)
