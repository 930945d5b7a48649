"""The turn's decisions (`conversations.decisions`), each a plain function: every case, no I/O."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.decisions import (
    Action,
    Outcome,
    burst_not_ours,
    commit_outcome,
    handoff_asked,
    inbound_action,
    openai_conversation_current,
    openai_conversation_rotates,
)
from conversations.models import REVISION_TYPES, SILENT_TYPES, TEXT_TYPES, MessageType, Owner

RESET = ("reset", "reset")
NOT_SPOKEN_TYPES = [t for t in MessageType if t not in (*TEXT_TYPES, *SILENT_TYPES, *REVISION_TYPES)]


# --- what a claimed customer message asks for ---------------------------------------------


@pytest.mark.parametrize("kind", TEXT_TYPES)
def test_words_in_a_bot_owned_conversation_are_for_the_agent(kind):
    assert inbound_action(type=kind, owner=Owner.BOT, command=None) == Action.ANSWER


def test_a_command_in_a_text_is_answered_as_a_command():
    assert inbound_action(type=MessageType.TEXT, owner=Owner.BOT, command=RESET) == Action.COMMAND


@pytest.mark.parametrize("kind", [MessageType.INTERACTIVE, MessageType.BUTTON])
def test_only_a_typed_text_can_be_a_command(kind):
    assert inbound_action(type=kind, owner=Owner.BOT, command=RESET) == Action.ANSWER


@pytest.mark.parametrize("command", [None, RESET])
@pytest.mark.parametrize("kind", TEXT_TYPES)
def test_words_in_a_conversation_a_person_owns_are_left_to_them_commands_too(kind, command):
    assert inbound_action(type=kind, owner=Owner.HUMAN, command=command) == Action.LEAVE


@pytest.mark.parametrize("owner", [Owner.BOT, Owner.HUMAN])
@pytest.mark.parametrize("kind", SILENT_TYPES)
def test_reactions_and_system_notices_ask_for_nothing_whoever_owns_the_conversation(kind, owner):
    assert inbound_action(type=kind, owner=owner, command=None) == Action.NOTHING


@pytest.mark.parametrize("kind", NOT_SPOKEN_TYPES)
def test_media_and_the_like_are_acknowledged_in_a_bot_owned_conversation(kind):
    assert inbound_action(type=kind, owner=Owner.BOT, command=None) == Action.ACKNOWLEDGE


@pytest.mark.parametrize("kind", NOT_SPOKEN_TYPES)
def test_media_and_the_like_are_left_to_the_person_who_owns_the_conversation(kind):
    assert inbound_action(type=kind, owner=Owner.HUMAN, command=None) == Action.LEAVE


@pytest.mark.parametrize("owner", [Owner.BOT, Owner.HUMAN])
@pytest.mark.parametrize("kind", REVISION_TYPES)
def test_edits_and_deletions_are_not_new_messages_whoever_owns_the_conversation(kind, owner):
    assert inbound_action(type=kind, owner=owner, command=None) == Action.REVISED


def test_every_message_type_has_an_action():
    assert set(TEXT_TYPES) | set(SILENT_TYPES) | set(REVISION_TYPES) | set(NOT_SPOKEN_TYPES) == set(MessageType)


# --- whose burst it is -------------------------------------------------------------------


def test_the_newest_message_s_task_answers_the_burst():
    assert burst_not_ours(message_id=3, burst_ids=[1, 2, 3]) is None
    assert burst_not_ours(message_id=1, burst_ids=[1]) is None


def test_an_older_message_s_task_leaves_the_burst_to_the_newest():
    assert burst_not_ours(message_id=1, burst_ids=[1, 2, 3]) == Outcome.SUPERSEDED


def test_a_task_whose_burst_was_answered_meanwhile_is_done():
    assert burst_not_ours(message_id=3, burst_ids=[]) == Outcome.DONE  # nothing left unanswered
    assert burst_not_ours(message_id=5, burst_ids=[1, 2]) == Outcome.DONE  # its message handled, older ones left


# --- the customer asking for a person ----------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Vorrei parlare con un operatore", "posso parlare con una persona vera?", "I want to talk to a human", "Can I speak to someone please"]
)
def test_a_burst_with_one_request_for_a_person_asks_for_a_hand_off(text):
    assert handoff_asked(["Buongiorno", text])


@pytest.mark.parametrize(
    "text",
    ["I bought it as a gift for a person I know", "is this safe for human skin?", "the operator of the website said", "Una persona mi ha detto che"],
)
def test_ordinary_sentences_that_mention_people_do_not_hand_over(text):
    assert not handoff_asked([text])


def test_an_empty_burst_asks_for_nothing():
    assert not handoff_asked([])


# --- which OpenAI conversation to answer in ----------------------------------------------

NOW = timezone.now()
WINDOW = timedelta(hours=48)


def test_a_conversation_begun_within_the_window_is_surely_the_current_one():
    assert openai_conversation_current(conversation_id="conv_1", started_at=NOW - timedelta(hours=47), now=NOW, rotate_after=WINDOW) == "conv_1"


@pytest.mark.parametrize(
    "conversation_id, started_at",
    [("", NOW), ("conv_1", None), ("conv_1", NOW - WINDOW), ("conv_1", NOW - timedelta(days=5))],
)
def test_without_a_conversation_or_begun_before_the_window_the_thread_must_be_looked_at(conversation_id, started_at):
    assert openai_conversation_current(conversation_id=conversation_id, started_at=started_at, now=NOW, rotate_after=WINDOW) == ""


def test_a_thread_quiet_longer_than_the_window_rotates():
    assert openai_conversation_rotates(previous_message_at=NOW - timedelta(hours=49), now=NOW, rotate_after=WINDOW)


@pytest.mark.parametrize("previous", [None, NOW - timedelta(hours=2), NOW - WINDOW])
def test_a_thread_active_within_the_window_or_with_nothing_before_does_not_rotate(previous):
    assert not openai_conversation_rotates(previous_message_at=previous, now=NOW, rotate_after=WINDOW)


# --- what a commit came to ---------------------------------------------------------------


def outcome(*, done=True, newer=False, check_newer=True, stored_reply=True, reply_wanted=True, handoff=False, spoken=Outcome.SENT):
    return commit_outcome(
        done=done, newer=newer, check_newer=check_newer, stored_reply=stored_reply, reply_wanted=reply_wanted, handoff=handoff, spoken=spoken
    )


def test_a_reply_overtaken_by_a_newer_text_is_stale():
    assert outcome(done=False, newer=True, stored_reply=False) == Outcome.STALE


def test_a_newer_text_does_not_make_stale_what_was_not_checked_against_it():
    assert outcome(done=False, newer=True, check_newer=False, stored_reply=False) == Outcome.SKIPPED


def test_a_burst_another_run_handled_is_skipped():
    assert outcome(done=False, newer=False, stored_reply=False) == Outcome.SKIPPED
    assert outcome(done=False, newer=False, check_newer=False, stored_reply=False, reply_wanted=False) == Outcome.SKIPPED


@pytest.mark.parametrize("spoken", [Outcome.SENT, Outcome.HANDOFF, Outcome.HOLDING, Outcome.ACKNOWLEDGED])
def test_a_stored_reply_ends_as_what_it_said(spoken):
    assert outcome(stored_reply=True, handoff=spoken in (Outcome.HANDOFF, Outcome.HOLDING), spoken=spoken) == spoken


def test_a_reply_not_stored_because_a_person_took_over_meanwhile_is_human():
    assert outcome(stored_reply=False, reply_wanted=True) == Outcome.HUMAN
    # The bot-owned check of a conversation a person owned already: no reply, told so.
    assert outcome(stored_reply=False, reply_wanted=True, check_newer=False, spoken=Outcome.HUMAN) == Outcome.HUMAN


def test_a_hand_off_not_stored_because_a_person_has_it_already_is_handled():
    assert outcome(stored_reply=False, reply_wanted=True, handoff=True, spoken=Outcome.HANDOFF) == Outcome.HANDLED


def test_a_commit_with_nothing_to_say_is_handled():
    assert outcome(stored_reply=False, reply_wanted=False, check_newer=False) == Outcome.HANDLED


def test_outcomes_equal_the_strings_the_tasks_returned():
    assert Outcome.SENT == "sent" and Outcome.STALE == "stale" and Outcome.HOLDING == "holding"
