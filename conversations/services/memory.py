"""What the agent remembers of a conversation: its OpenAI conversation (one at a time,
started on first need, a new one after CONVERSATION_ROTATE_HOURS of quiet, seeded with a
summary kept on the conversation) and what the offline agent needs to know."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from ..models import REVISION_TYPES, WORDS, Author, Conversation, Message, Origin

SUMMARY_MESSAGES = 40


def previous_message_at(*, conversation_id: int, before_id: int) -> datetime | None:
    """When the message before `before_id` was stored (None: there is none)."""
    return (
        Message.objects.filter(conversation_id=conversation_id, pk__lt=before_id)
        .order_by("-pk")
        .values_list("created_at", flat=True)
        .first()
    )


def latest_texts(*, conversation_id: int, before_id: int, limit: int) -> list[tuple[bool, datetime, str]]:
    """(from the customer, written at, words) of the latest `limit` messages with words
    (`Message.words`: a voice note's are its transcript) before `before_id`, oldest first; an
    edited message as it reads now, a deleted one not at all (the customer took it back). Past chats imported from the WhatsApp Business app
    are older than every live message whatever their ids (they are imported after the first
    live ones): they come before them, in the order they were written."""
    texts = Message.objects.filter(conversation_id=conversation_id, deleted_at__isnull=True).annotate(words=WORDS).exclude(words="")
    texts = texts.exclude(type__in=REVISION_TYPES)
    live = texts.filter(pk__lt=before_id).exclude(origin=Origin.HISTORY).order_by("-pk")
    rows = list(live.values_list("author", "created_at", "words")[:limit])
    if len(rows) < limit:
        past = texts.filter(origin=Origin.HISTORY).order_by("-provider_timestamp", "-pk")
        rows += past.values_list("author", "provider_timestamp", "words")[: limit - len(rows)]
    return [(author == Author.CUSTOMER, at, text) for author, at, text in reversed(rows)]


def summary_rows(*, conversation_id: int, before_id: int) -> list[tuple[bool, str]]:
    """(from the customer, text) of the latest messages before `before_id`, oldest first."""
    rows = latest_texts(conversation_id=conversation_id, before_id=before_id, limit=SUMMARY_MESSAGES)
    return [(from_customer, text) for from_customer, _at, text in rows]


def openai_conversation_store(*, conversation: Conversation, current: str, new_id: str, summary: str) -> str:
    """Keep `new_id` as the conversation's OpenAI conversation unless another run replaced
    `current` first (conditional: two runs racing keep one winner); the one in force."""
    now = timezone.now()
    if not Conversation.objects.filter(pk=conversation.pk, openai_conversation_id=current).update(
        openai_conversation_id=new_id, openai_conversation_started_at=now, summary=summary
    ):
        return Conversation.objects.values_list("openai_conversation_id", flat=True).get(pk=conversation.pk) or new_id
    conversation.openai_conversation_id, conversation.openai_conversation_started_at, conversation.summary = new_id, now, summary
    return new_id


def bot_replied_before(*, conversation_id: int) -> bool:
    return Message.objects.filter(conversation_id=conversation_id, author=Author.BOT).exists()
