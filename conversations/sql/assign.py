"""Who takes a hand-off: the one choice of an assignee, used by every path that puts a
conversation in the human queue (the turn's commit, `sql.reply`, embeds it; the sweeper and
an agent going away run `handoff_assign`).

The available agent (active staff, `StaffPreference.available`) with the fewest open
conversations in their hands (human-owned, open); ties go to the lowest user id.

Race: two hand-offs at once would each count from their own snapshot and both pick the agent
who was least busy before either. So each takes a transaction-level advisory lock
(ASSIGN_LOCK) in a statement *before* the one that picks: the second waits for the first's
commit, and its picking statement's snapshot, taken after the lock, counts the first's
assignment. Only hand-offs take it; an ordinary reply never does.
"""

from __future__ import annotations

from functools import lru_cache

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from profiles.models import StaffPreference

from ..models import Conversation, ConversationStatus, Owner
from . import literal, table

# pg_advisory_xact_lock's key: "whatsbot assign" as an integer, constant across processes.
ASSIGN_LOCK = 0x7762_6173_7369_676E

LOCK_SQL = f"SELECT pg_advisory_xact_lock({ASSIGN_LOCK})"


@lru_cache(maxsize=1)
def assignee_pick_sql() -> str:
    """A scalar subquery: the user id a hand-off goes to now, or NULL when nobody is available."""
    users, conversations = table(get_user_model()), table(Conversation)
    return f"""(SELECT u.id FROM {users} u JOIN {table(StaffPreference)} p ON p.user_id = u.id
        WHERE p.available AND u.is_active AND u.is_staff
        ORDER BY (SELECT count(*) FROM {conversations} a WHERE a.assigned_to_id = u.id
                  AND a.owner = {literal(Owner.HUMAN)} AND a.status = {literal(ConversationStatus.OPEN)}), u.id
        LIMIT 1)"""


@lru_cache(maxsize=1)
def _assign_sql() -> str:
    return f"""
UPDATE {table(Conversation)} c SET assigned_to_id = pick.id, revision = c.revision + 1, changed_at = %(now)s
FROM (SELECT {assignee_pick_sql()} AS id) pick
WHERE c.id = %(conversation_id)s AND pick.id IS NOT NULL AND c.assigned_to_id IS NULL
  AND c.owner = {literal(Owner.HUMAN)} AND c.status = {literal(ConversationStatus.OPEN)}
RETURNING pick.id"""


def handoff_assign(*, conversation_id: int, now) -> int | None:
    """Assign a conversation waiting in the human queue, unassigned, to the least busy
    available agent (the user id), on Django's connection; None when nobody is available or
    it is not waiting any more. In the caller's transaction, or one of its own (the lock
    lasts until it commits)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_SQL)
        cursor.execute(_assign_sql(), {"conversation_id": conversation_id, "now": now})
        row = cursor.fetchone()
    return row[0] if row else None
