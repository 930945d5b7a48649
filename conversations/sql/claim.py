"""A customer message claimed, and read with everything its turn needs, in one statement.

The claim is a conditional update of the message's lease (`locked_until`): it succeeds only
while no worker holds the message and it is not handled yet, and it counts the attempt
(the sweeper stops re-queueing a message that keeps failing). The same statement returns
the message with its conversation, channel and profile, and the burst: every unanswered
customer message of the conversation that is words (`words_sql`: texts, transcribed voice
notes, stored images), and the claimed message itself, by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from profiles.models import ClientProfile

from .. import database
from ..models import Channel, Conversation, Direction, Message
from . import Columns, columns, literal, table, words_sql

# Big columns a turn never reads (deferred: read on access).
_DEFERRED = ("payload", "media", "referral", "earlier_texts")


@dataclass
class Claimed:
    message: Message  # with its conversation, channel and profile loaded
    burst: list[Message]  # every unanswered customer message that is words, by id (this one included)


@lru_cache(maxsize=2)
def _statement(claim: bool) -> tuple[str, tuple[Columns, ...]]:
    message = columns(Message, "m", _DEFERRED)
    returning = columns(Message, "claimed", _DEFERRED)  # the same columns, for RETURNING
    conversation, channel, profile = columns(Conversation, "c"), columns(Channel, "ch"), columns(ClientProfile, "p")
    messages = table(Message)
    if claim:
        m = f"""
    UPDATE {messages} AS claimed SET locked_until = %(locked_until)s::timestamptz, attempts = claimed.attempts + 1
    WHERE claimed.id = %(message_id)s::bigint AND claimed.direction = {literal(Direction.INBOUND)} AND claimed.handled_at IS NULL
      AND (claimed.locked_until IS NULL OR claimed.locked_until <= %(now)s::timestamptz)
    RETURNING {returning.sql}"""
    else:  # read only: the debounced reply's task, whose message was claimed before
        m = f"SELECT {returning.sql} FROM {messages} AS claimed WHERE claimed.id = %(message_id)s::bigint"
    sql = f"""
WITH m AS ({m})
SELECT {message.sql}, {conversation.sql}, {channel.sql}, {profile.sql},
    (SELECT json_agg(json_build_array(b.id, b.type, b.text, b.transcript) ORDER BY b.id) FROM {messages} b
     WHERE b.conversation_id = m.conversation_id AND b.direction = {literal(Direction.INBOUND)}
       AND b.handled_at IS NULL AND (b.id = m.id OR {words_sql("b")}))
FROM m
JOIN {table(Conversation)} c ON c.id = m.conversation_id
JOIN {table(Channel)} ch ON ch.id = c.channel_id
JOIN {table(ClientProfile)} p ON p.id = c.profile_id"""
    return sql, (message, conversation, channel, profile)


async def claim_load(*, message_id: int, lease: timedelta, images: bool = True) -> Claimed | None:
    """Claim an unhandled customer message for `lease`; None when it is not claimable
    (handled, or another worker holds it). `images`: the model sees images (`words_sql`)."""
    now = timezone.now()
    return await _run(True, database.params(message_id=message_id, locked_until=now + lease, now=now, images=images))


async def load(*, message_id: int, images: bool = True) -> Claimed | None:
    """The same rows, without claiming (None: no such message)."""
    return await _run(False, database.params(message_id=message_id, images=images))


async def _run(claim: bool, params: dict) -> Claimed | None:
    sql, parts = _statement(claim)

    async def work(conn):
        cursor = await conn.execute(sql, params, prepare=True)
        return await cursor.fetchone()

    row = await database.statement(work)
    return None if row is None else _claimed(list(row), parts)


def _claimed(row: list, parts: tuple[Columns, ...]) -> Claimed:
    instances, start = [], 0
    for part in parts:
        instances.append(part.instance(row[start : start + len(part.names)]))
        start += len(part.names)
    message, conversation, channel, profile = instances
    Conversation.channel.field.set_cached_value(conversation, channel)
    Conversation.profile.field.set_cached_value(conversation, profile)
    Message.conversation.field.set_cached_value(message, conversation)
    burst = [
        message
        if pk == message.pk
        else Message.from_db(
            DEFAULT_DB_ALIAS, ("id", "conversation_id", "type", "text", "transcript"), [pk, conversation.pk, kind, text, transcript]
        )
        for pk, kind, text, transcript in row[start] or []  # json_agg: decoded by psycopg; NULL when none
    ]
    return Claimed(message=message, burst=burst)
