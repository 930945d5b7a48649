"""The event loop's connections keep their prepared statements across a stale reply commit.

A commit that once ended its pipelined transaction with a ROLLBACK made psycopg forget its
cache of prepared statements and queue a DEALLOCATE ALL, sent just after the next statement
was prepared: that statement then failed on the connection for good (docs/burst-bench.md).
Here, deterministically, on a pool of one connection: a stale commit, then the claim and
the load, each twice.
"""

from __future__ import annotations

import logging

import pytest
from django.utils import timezone

from conversations import database, runtime
from conversations.models import LEASE, Author
from conversations.services.outbound import message_build
from conversations.sql import claim as claim_sql
from conversations.sql import reply as reply_sql

from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stale_commit_leaves_the_connection_s_prepared_statements_working(settings, caplog):
    settings.WORKER_DB_CONNECTIONS = 1  # every statement below on the pool's one connection
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    newer = MessageFactory(conversation=conversation, text="sono Anna")  # makes the reply to `first` stale
    now = timezone.now()
    reply = message_build(conversation=conversation, text="Ciao Anna!", author=Author.BOT, claim_for_delivery=True, now=now)
    backends: list[int] = []

    async def backend() -> None:
        async with database.connection() as conn:
            backends.append(conn.info.backend_pid)

    async def stale_commit_then_claims():
        await backend()
        committed = await reply_sql.commit(
            reply_sql.Commit(conversation_id=conversation.pk, burst_ids=[first.pk], now=now, reply=reply, preview="Ciao Anna!")
        )
        claims = [await claim_sql.claim_load(message_id=newer.pk, lease=LEASE) for _ in range(2)]
        loads = [await claim_sql.load(message_id=newer.pk) for _ in range(2)]
        await backend()
        return committed, claims, loads

    with caplog.at_level(logging.WARNING):
        committed, claims, loads = runtime.run(stale_commit_then_claims)

    assert (committed.done, committed.newer, committed.reply) == (False, True, None)  # stale: nothing written
    assert claims[0].message.pk == newer.pk and claims[1] is None  # claimed, then held by that claim
    assert [loaded.message.pk for loaded in loads] == [newer.pk, newer.pk]
    assert len(backends) == 2 and len(set(backends)) == 1  # the one connection throughout, never found broken
    # Neither "database connection failed (...), retrying on another" nor any error.
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == [], caplog.text
