"""What the agent remembers of a conversation: its OpenAI conversation (one at a time,
started on first need, a new one after CONVERSATION_ROTATE_HOURS of quiet, seeded with a
summary kept on the conversation) and what the offline agent needs to know."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max, Q
from django.utils import timezone

from ..models import REVISION_TYPES, WORDS, Author, Conversation, Direction, Message, MessageStatus, MessageType, Origin

SUMMARY_MESSAGES = 40
# At most this many messages are added to the OpenAI conversation before a reply (the newest
# of those it misses: a long hand-off's start is left to the staff, and to the next summary).
CATCH_UP_MESSAGES = 30


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


def openai_conversation_store(*, conversation: Conversation, current: str, new_id: str, summary: str, synced_id: int | None) -> str:
    """Keep `new_id` as the conversation's OpenAI conversation unless another run replaced
    `current` first (conditional: two runs racing keep one winner); the one in force.
    `synced_id`: the newest message its seed (the summary) covers; None: the watermark stays
    (a first OpenAI conversation is told what was written before it, `unsynced_rows`)."""
    now = timezone.now()
    values = {"openai_conversation_id": new_id, "openai_conversation_started_at": now, "summary": summary}
    if synced_id is not None:
        values["openai_synced_message_id"] = synced_id
    if not Conversation.objects.filter(pk=conversation.pk, openai_conversation_id=current).update(**values):
        return Conversation.objects.values_list("openai_conversation_id", flat=True).get(pk=conversation.pk) or new_id
    for name, value in values.items():
        setattr(conversation, name, value)
    return new_id


def openai_synced_move(*, conversation_id: int, openai_conversation: str, through_id: int) -> None:
    """The OpenAI conversation holds the messages up to `through_id` now (added before a
    reply): the watermark moves forward, unless the OpenAI conversation was replaced meanwhile."""
    Conversation.objects.filter(
        Q(openai_synced_message_id__isnull=True) | Q(openai_synced_message_id__lt=through_id),
        pk=conversation_id, openai_conversation_id=openai_conversation,
    ).update(openai_synced_message_id=through_id)  # fmt: skip


@dataclass(frozen=True)
class Written:
    """A message the OpenAI conversation misses, as the model is told it."""

    id: int
    author: str  # Author
    staff: str  # who wrote it, for staff: a name, or "" for the WhatsApp Business app's owner
    origin: str
    words: str


def unsynced_rows(*, conversation_id: int, after_id: int | None, burst_ids: list[int]) -> list[Written]:
    """What was written in the thread after `after_id` (the watermark; None: from the start)
    and before the burst's newest message, that the OpenAI conversation does not hold: the
    customer's words answered by nobody (a hand-off's), staff replies, the WhatsApp Business
    app's echoes, templates; at most CATCH_UP_MESSAGES, the newest, oldest first. Not the
    burst (the reply's input), not the bot's (the model's replies are its own output; a fixed
    text or a command's answer is no news to it), not reactions, not a deleted message or one that never reached the customer; an
    edited one as it reads now; not past chats imported (the summary's)."""
    rows = (
        Message.objects.filter(conversation_id=conversation_id, pk__lt=max(burst_ids), deleted_at__isnull=True)
        .filter(pk__gt=after_id or 0)
        .exclude(pk__in=burst_ids)
        .exclude(type__in=(*REVISION_TYPES, MessageType.REACTION))
        .exclude(origin=Origin.HISTORY)
        .exclude(direction=Direction.OUTBOUND, status=MessageStatus.FAILED)
        .exclude(author=Author.BOT)
        .annotate(words=WORDS)
        .exclude(words="")
        .order_by("-pk")
        .values_list("pk", "author", "sent_by__first_name", "sent_by__last_name", "sent_by__username", "origin", "words")
    )
    return [
        Written(id=pk, author=author, staff=f"{first or ''} {last or ''}".strip() or username or "", origin=origin, words=words)
        for pk, author, first, last, username, origin, words in reversed(rows[:CATCH_UP_MESSAGES])
    ]


def offline_context(*, conversation_id: int) -> tuple[bool, bool]:
    """(the bot replied before, a person wrote since its last message) — one query."""
    seen = Message.objects.filter(conversation_id=conversation_id, author__in=(Author.BOT, Author.STAFF)).aggregate(
        bot=Max("pk", filter=Q(author=Author.BOT)), staff=Max("pk", filter=Q(author=Author.STAFF))
    )
    return seen["bot"] is not None, seen["staff"] is not None and (seen["bot"] is None or seen["staff"] > seen["bot"])
