"""The end of a turn in SQL (`conversations.sql.reply`): the commit's rules, "sent", the
extraction's usage, the leases of the work in flight. Each statement runs on the event
loop's own connections (`runtime.run`), so the tests commit their rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from conversations import runtime
from conversations.models import LEASE, Author, Conversation, Message, MessageStatus, MessageType, Owner, StatusUpdate
from conversations.services.outbound import message_build
from conversations.sql import reply as reply_sql

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)

USAGE = {"ai_model": "gpt-4.1-mini", "input_tokens": 300, "cached_tokens": 0, "output_tokens": 12, "cost_usd": Decimal("0.000139")}


def commit(conversation, burst: list[Message], *, text: str | None = "Ciao Anna!", **fields) -> reply_sql.Committed:
    """The turn's commit of `burst` with a bot reply saying `text` (None: no reply)."""
    now = fields.pop("now", timezone.now())
    row = None
    if text is not None:
        row = message_build(conversation=conversation, text=text, author=Author.BOT, claim_for_delivery=True, now=now)
    return runtime.run(
        reply_sql.commit,
        reply_sql.Commit(
            conversation_id=conversation.pk, burst_ids=[m.pk for m in burst], now=now, reply=row, preview=text or "", **fields
        ),
    )


def revision(conversation) -> int:
    return Conversation.objects.values_list("revision", flat=True).get(pk=conversation.pk)


def unhandled(*messages: Message) -> list[bool]:
    return [Message.objects.get(pk=m.pk).handled_at is None for m in messages]


@pytest.fixture
def conversation():
    return ConversationFactory()


@pytest.fixture
def burst(conversation) -> list[Message]:
    return [MessageFactory(conversation=conversation, text="Buongiorno"), MessageFactory(conversation=conversation, text="sono Anna")]


# --- the commit --------------------------------------------------------------------------


def test_it_marks_the_burst_handled_and_stores_the_reply_already_claimed_for_its_delivery(conversation, burst):
    before, now = revision(conversation), timezone.now()

    committed = commit(conversation, burst, now=now)

    assert (committed.done, committed.newer, committed.bot_owned) == (True, False, True)
    reply = Message.objects.get(direction="out")
    assert committed.reply.pk == reply.pk and not committed.reply._state.adding
    assert (reply.author, reply.type, reply.text, reply.status) == (Author.BOT, MessageType.TEXT, "Ciao Anna!", MessageStatus.PENDING)
    assert reply.attempts == 1 and reply.locked_until == now + LEASE  # its turn delivers it right after
    for message in burst:
        message.refresh_from_db()
        assert message.handled_at == now and message.locked_until is None
    conversation.refresh_from_db()
    assert (conversation.last_message_at, conversation.last_message_preview, conversation.changed_at) == (now, "Ciao Anna!", now)
    assert conversation.revision == before + 1 and conversation.owner == Owner.BOT


def test_a_reply_is_stale_when_a_newer_customer_text_waits_and_nothing_is_written(conversation, burst):
    newer = MessageFactory(conversation=conversation, text="e in Svizzera?")
    before = revision(conversation)

    committed = commit(conversation, burst, usage=(burst[-1].pk, USAGE))

    assert (committed.done, committed.newer, committed.reply) == (False, True, None)
    assert unhandled(*burst, newer) == [True, True, True]  # the newer text's turn answers all three
    assert not Message.objects.filter(direction="out").exists()
    assert revision(conversation) == before
    assert Message.objects.get(pk=burst[-1].pk).input_tokens is None  # the usage goes only with a done commit


def test_a_newer_text_does_not_stop_a_commit_told_not_to_look(conversation, burst):
    newer = MessageFactory(conversation=conversation, text="e in Svizzera?")

    committed = commit(conversation, burst, check_newer=False)

    assert (committed.done, committed.newer) == (True, True) and committed.reply is not None
    assert unhandled(*burst, newer) == [False, False, True]


@pytest.mark.parametrize(
    "later",
    [
        {"type": "image", "text": ""},  # media gets its own acknowledgement, not the burst's answer
        {"handled_at": timezone.now()},  # a command answered at once
        {"direction": "out", "author": "staff"},  # not the customer's
    ],
)
def test_only_an_unhandled_customer_text_makes_the_reply_stale(conversation, burst, later):
    MessageFactory(conversation=conversation, **later)

    committed = commit(conversation, burst)

    assert (committed.done, committed.newer) == (True, False) and committed.reply is not None


def test_a_burst_another_run_handled_meanwhile_is_skipped_and_nothing_is_written(conversation, burst):
    Message.objects.filter(pk=burst[0].pk).update(handled_at=timezone.now())
    before = revision(conversation)

    committed = commit(conversation, burst)

    assert (committed.done, committed.newer, committed.reply) == (False, False, None)
    assert unhandled(*burst) == [False, True]  # all or nothing: the other one is not marked either
    assert not Message.objects.filter(direction="out").exists()
    assert revision(conversation) == before


def test_a_conversation_staff_took_over_while_the_model_thought_gets_the_burst_handled_and_no_reply(conversation, burst):
    Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN)
    before = revision(conversation)

    committed = commit(conversation, burst)

    assert (committed.done, committed.bot_owned, committed.reply) == (True, False, None)
    assert unhandled(*burst) == [False, False]  # the staff member sees them as handled by the bot's run
    assert not Message.objects.filter(direction="out").exists()
    conversation.refresh_from_db()
    assert conversation.revision == before and conversation.owner == Owner.HUMAN and conversation.last_message_preview == ""


def test_a_hand_off_moves_the_conversation_to_the_human_queue_with_its_message(conversation, burst):
    now = timezone.now()

    committed = commit(conversation, burst, text="Ti passo a un collega.", handoff_reason="The customer asked for a person.", now=now)

    assert committed.done and committed.reply.text == "Ti passo a un collega."
    conversation.refresh_from_db()
    assert (conversation.owner, conversation.handoff_reason, conversation.handoff_at) == (Owner.HUMAN, "The customer asked for a person.", now)


def test_a_hand_off_reason_is_cut_to_its_column(conversation, burst):
    commit(conversation, burst, handoff_reason="x" * 300)

    conversation.refresh_from_db()
    assert conversation.handoff_reason == "x" * 255


def test_a_commit_without_a_hand_off_leaves_the_owner_and_the_last_hand_off_alone(conversation, burst):
    Conversation.objects.filter(pk=conversation.pk).update(handoff_reason="earlier", handoff_at=timezone.now() - timezone.timedelta(days=1))

    commit(conversation, burst)

    conversation.refresh_from_db()
    assert conversation.owner == Owner.BOT and conversation.handoff_reason == "earlier"


def test_holding_records_the_error_on_every_message_of_the_burst(conversation, burst):
    error = {"error_code": "openai_503", "error_title": "The AI could not answer.", "error_detail": "busy (after 3 attempt(s))"}

    committed = commit(conversation, burst, text="Un collega ti risponderà.", handoff_reason="AI unavailable: busy", error=error)

    assert committed.done and committed.reply is not None
    for message in burst:
        message.refresh_from_db()
        assert (message.error_code, message.error_title, message.error_detail) == tuple(error.values())
    assert Message.objects.get(direction="out").error_code == ""  # the holding message itself is fine
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN


def test_a_commit_without_an_error_keeps_the_errors_already_recorded(conversation, burst):
    Message.objects.filter(pk=burst[0].pk).update(error_code="earlier", error_title="An earlier failure.")

    commit(conversation, burst)

    burst[0].refresh_from_db()
    assert (burst[0].error_code, burst[0].error_title) == ("earlier", "An earlier failure.")


def test_the_extraction_s_usage_is_stored_with_the_reply_on_the_extracted_message_only(conversation, burst):
    first, second = burst

    committed = commit(conversation, burst, usage=(second.pk, USAGE))

    assert committed.done
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.handled_at and second.handled_at
    assert (second.ai_model, second.input_tokens, second.cached_tokens, second.output_tokens, second.cost_usd) == tuple(USAGE.values())
    assert first.ai_model == "" and first.input_tokens is None  # only the extracted message's


def test_with_nothing_to_say_the_burst_is_handled_and_the_conversation_not_moved(conversation, burst):
    before = revision(conversation)

    committed = commit(conversation, burst, text=None, check_newer=False)

    assert committed.done and committed.reply is None
    assert unhandled(*burst) == [False, False]
    assert revision(conversation) == before


# --- "sent" --------------------------------------------------------------------------------


def sent(message: Message, wamid: str) -> bool:
    return runtime.run(reply_sql.mark_sent, message_id=message.pk, conversation_id=message.conversation_id, wamid=wamid, sent_at=timezone.now())


@pytest.fixture
def pending(conversation) -> Message:
    now = timezone.now()
    return MessageFactory(
        conversation=conversation, direction="out", author="bot", wamid="", status=MessageStatus.PENDING, attempts=1, locked_until=now + LEASE
    )


def test_sent_stores_the_provider_s_id_ends_the_lease_and_moves_the_conversation_once(conversation, pending):
    before = revision(conversation)

    assert sent(pending, "wamid.out1") is False

    pending.refresh_from_db()
    assert (pending.status, pending.wamid, pending.locked_until) == (MessageStatus.SENT, "wamid.out1", None)
    assert pending.sent_at and pending.handled_at == pending.sent_at and pending.status_rank == 1
    assert revision(conversation) == before + 1
    # A second run (the write retried after a lost answer) changes nothing.
    sent(pending, "wamid.out1")
    assert revision(conversation) == before + 1
    assert Message.objects.get(pk=pending.pk).sent_at == pending.sent_at


def test_sent_says_when_the_provider_reported_statuses_before_the_wamid_was_stored(pending):
    StatusUpdate.objects.create(wamid="wamid.early", status="delivered", timestamp=timezone.now())

    assert sent(pending, "wamid.early") is True


def test_sent_does_not_touch_a_message_no_longer_pending(conversation, pending):
    Message.objects.filter(pk=pending.pk).update(status=MessageStatus.FAILED)
    before = revision(conversation)

    sent(pending, "wamid.late")

    pending.refresh_from_db()
    assert pending.status == MessageStatus.FAILED and pending.wamid == ""
    assert revision(conversation) == before


# --- usage and leases ------------------------------------------------------------------------


def test_the_extraction_s_usage_can_be_stored_on_its_own(burst):
    runtime.run(reply_sql.usage_set, message_id=burst[0].pk, usage=USAGE)

    burst[0].refresh_from_db()
    assert (burst[0].ai_model, burst[0].input_tokens, burst[0].cost_usd) == ("gpt-4.1-mini", 300, Decimal("0.000139"))


def test_leases_move_forward_only_for_messages_still_held_and_unhandled(conversation):
    soon, later = timezone.now() + timezone.timedelta(seconds=5), timezone.now() + LEASE
    held = MessageFactory(conversation=conversation, locked_until=soon)
    handled = MessageFactory(conversation=conversation, locked_until=soon, handled_at=timezone.now())
    free = MessageFactory(conversation=conversation)

    runtime.run(reply_sql.leases_renew, ids=[held.pk, handled.pk, free.pk], locked_until=later)

    assert [Message.objects.get(pk=m.pk).locked_until for m in (held, handled, free)] == [later, soon, None]
