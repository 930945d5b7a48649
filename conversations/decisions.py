"""The decisions of a customer's turn, as plain functions of what the turn has read: whose
burst it is, what a message asks for, whether the customer wants a person, which OpenAI
conversation to answer in, what became of a commit. No I/O here."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from .agent.replies import HANDOFF_AI_UNAVAILABLE, HANDOFF_ASKED, HANDOFF_BY_AI, human_requested
from .models import REVISION_TYPES, SILENT_TYPES, TEXT_TYPES, MessageType, Owner


class Outcome(StrEnum):
    """How a turn, a delivery or a task ended."""

    SUBMITTED = "submitted"  # handed to the worker's event loop
    SKIPPED = "skipped"  # not ours: handled already, or another worker holds it
    QUEUED = "queued"  # the reply is the debounced task's
    SENT = "sent"  # the reply (or a command's answer) is stored and sent
    STALE = "stale"  # a newer customer text waits: its turn answers the whole burst
    SUPERSEDED = "superseded"  # a newer message's task answers the burst
    DONE = "done"  # answered already, or the message is gone
    HUMAN = "human"  # a person owns the conversation: no reply
    HANDLED = "handled"  # nothing to say (a reaction, a person already has it)
    HANDOFF = "handoff"  # the conversation went to the human queue, the customer was told
    HOLDING = "holding"  # the AI failed for good: the holding message, then the human queue
    ACKNOWLEDGED = "acknowledged"  # media and the like: the configured acknowledgement
    FAILED = "failed"  # the provider refused the message for good
    RETRY = "retry"  # the provider refused for now: another attempt is queued
    STORED = "stored"  # a message's media fetched and kept
    EXPIRED = "expired"  # the provider no longer has the media
    REFUSED = "refused"  # the media is not the one announced, or too large


class Action(StrEnum):
    """What a claimed customer message asks for."""

    NOTHING = "nothing"  # a reaction or a system notice
    REVISED = "revised"  # an edit or a deletion (applied to its message when stored): no reply, no read receipt
    LEAVE = "leave"  # a person owns the conversation
    ACKNOWLEDGE = "acknowledge"  # media the bot cannot understand, in a bot-owned conversation
    COMMAND = "command"  # /reset, /history, /info
    ANSWER = "answer"  # words for the agent (a text, a voice note, an image)


def inbound_action(*, type: str, owner: str, command: tuple[str, str] | None, understood: bool = False) -> Action:
    """`understood`: media the model can take (a stored voice note or image, an AI configured)."""
    if type in REVISION_TYPES:
        return Action.REVISED
    if type in SILENT_TYPES:
        return Action.NOTHING
    if owner != Owner.BOT:
        return Action.LEAVE
    if type in TEXT_TYPES:
        return Action.COMMAND if command and type == MessageType.TEXT else Action.ANSWER
    return Action.ANSWER if understood else Action.ACKNOWLEDGE


def burst_not_ours(*, message_id: int, burst_ids: list[int]) -> Outcome | None:
    """SUPERSEDED or DONE when `message_id`'s task is not the one to answer the burst (a
    newer message's task answers all of it, or another run just did); None when it is."""
    if burst_ids and burst_ids[-1] == message_id:
        return None
    return Outcome.SUPERSEDED if burst_ids and burst_ids[-1] > message_id else Outcome.DONE


def handoff_asked(texts: list[str]) -> bool:
    """The customer asked for a person in one of the burst's texts (no model call then)."""
    return any(human_requested(text) for text in texts)


# How the sweeper's hand-off reason begins (a message the bot failed to handle, for good).
HANDOFF_TURN_FAILED = "The bot could not handle a message"


class NeedsPerson(StrEnum):
    """Why a conversation needs a person (what the console's notification says)."""

    ASKED = "asked"  # the customer asked for a person
    HANDED_OVER = "handed_over"  # the AI handed over
    AI_UNAVAILABLE = "ai_unavailable"  # the AI (or the bot) could not answer
    MESSAGE = "message"  # the customer wrote in a conversation a person owns


def needs_person_cause(*, handoff_reason: str, handoff_at: datetime | None, waiting_since: datetime) -> NeedsPerson:
    """Why the customer waits: the hand-off's reason when the wait began with the hand-off
    (the burst it answered came at or before it), else a new message to the person who owns
    the conversation (what they wrote after a person had answered)."""
    if handoff_at is None or waiting_since > handoff_at:
        return NeedsPerson.MESSAGE
    if handoff_reason == HANDOFF_ASKED:
        return NeedsPerson.ASKED
    if handoff_reason.startswith(HANDOFF_BY_AI):
        return NeedsPerson.HANDED_OVER
    if handoff_reason.startswith((HANDOFF_AI_UNAVAILABLE, HANDOFF_TURN_FAILED)):
        return NeedsPerson.AI_UNAVAILABLE
    return NeedsPerson.MESSAGE


def openai_conversation_current(*, conversation_id: str, started_at: datetime | None, now: datetime, rotate_after: timedelta) -> str:
    """The stored OpenAI conversation when it surely is still the one to answer in (it began
    within the rotation window, so the thread cannot have been quiet that long), else ""."""
    if conversation_id and started_at and now - started_at < rotate_after:
        return conversation_id
    return ""


def openai_conversation_rotates(*, previous_message_at: datetime | None, now: datetime, rotate_after: timedelta) -> bool:
    """Whether the thread was quiet long enough for a new OpenAI conversation."""
    return bool(previous_message_at and now - previous_message_at > rotate_after)


def commit_outcome(*, done: bool, newer: bool, check_newer: bool, stored_reply: bool, reply_wanted: bool, handoff: bool, spoken: Outcome) -> Outcome:
    """What a commit of the burst came to. `spoken`: the outcome when the reply was stored."""
    if not done:
        return Outcome.STALE if check_newer and newer else Outcome.SKIPPED
    if stored_reply:
        return spoken
    if reply_wanted and not handoff:
        return Outcome.HUMAN  # a person took the conversation over while the model was thinking
    return Outcome.HANDLED  # nothing to say, or already with a person: the customer was told once
