"""Storing what the customer sends, and the delivery statuses of what we sent."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from profiles.models import ClientProfile
from webhooks.meta import InboundMessage, StatusEvent

from ..db import insert_returning, thread_rows_store, update_from_values
from ..models import (
    STATUS_RANK,
    Author,
    Channel,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    StatusUpdate,
)

logger = logging.getLogger(__name__)

PREVIEW_LENGTH = 160


def message_preview(*, type: str, text: str) -> str:
    text = " ".join(text.split())
    if type == "text":
        return text[:PREVIEW_LENGTH]
    label = f"[{type}]"
    return f"{label} {text}"[:PREVIEW_LENGTH] if text else label


PROFILE_UPSERT = {
    "profile_name": "CASE WHEN EXCLUDED.profile_name <> '' THEN EXCLUDED.profile_name ELSE T.profile_name END",
    "last_contact_at": "CASE WHEN T.last_contact_at IS NULL OR EXCLUDED.last_contact_at > T.last_contact_at "
    "THEN EXCLUDED.last_contact_at ELSE T.last_contact_at END",
}


def inbound_messages_store(*, channel: Channel, messages: Sequence[InboundMessage], cursor=None) -> list[int]:
    """Store a webhook's messages for one channel; return the ids of the ones that are new.
    See `inbound_rows_store`."""
    return [pk for pk, _ in inbound_rows_store(channel=channel, messages=messages, cursor=cursor)]


def inbound_rows_store(*, channel: Channel, messages: Sequence[InboundMessage], cursor=None) -> list[tuple[int, str]]:
    """Store messages for one channel; return `(id, wamid)` of the ones that are new, by id.

    Runs inside the caller's transaction. Profiles and conversations are upserted, and
    messages inserted under the unique `wamid`, so a duplicate delivery (Meta retries for
    days) inserts nothing and returns nothing. On PostgreSQL that is one statement for the
    whole batch plus one UPDATE for the threads' state, whatever the number of messages.
    `cursor`: a cursor of `conversations.db.pipelined_transaction()` (PostgreSQL), whose
    transaction the caller commits; the UPDATE is then queued, not waited for.
    """
    if not messages:
        return []
    now = timezone.now()

    profiles: dict[str, dict] = {}
    for m in messages:
        at = m.timestamp or now
        row = profiles.setdefault(
            m.wa_id, {"wa_id": m.wa_id, "profile_name": "", "first_contact_at": at, "last_contact_at": at, "created_at": now}
        )
        row["profile_name"] = m.profile_name or row["profile_name"]
        row["first_contact_at"] = min(row["first_contact_at"], at)
        row["last_contact_at"] = max(row["last_contact_at"], at)

    def message_row(m: InboundMessage) -> dict:
        return {
            "direction": Direction.INBOUND,
            "author": Author.CUSTOMER,
            "type": m.type,
            "text": m.text,
            "payload": m.payload,
            "media": m.media,
            "context_wamid": m.context_wamid,
            "referral": m.referral,
            "wamid": m.wamid,
            "provider_timestamp": m.timestamp,
            "status": MessageStatus.RECEIVED,
            "created_at": now,
        }

    if connection.vendor == "postgresql":
        inserted = thread_rows_store(
            profiles=list(profiles.values()),
            conversation={"channel": channel.pk, "created_at": now, "changed_at": now},
            messages=[{"wa_id": m.wa_id, **message_row(m)} for m in messages],
            profile_update=PROFILE_UPSERT,
            cursor=cursor,
        )
        conversation_of = {wamid: conversation_id for _, wamid, conversation_id in inserted}
    else:  # SQLite (the embedded default): the same, one statement per step
        profile_ids = dict(
            (wa_id, pk)
            for pk, wa_id in insert_returning(
                ClientProfile, list(profiles.values()), conflict=["wa_id"], update=PROFILE_UPSERT, returning=["id", "wa_id"]
            )
        )
        conversation_ids = dict(
            (profile_id, pk)
            for pk, profile_id in insert_returning(
                Conversation,
                [{"channel": channel.pk, "profile": pid, "created_at": now, "changed_at": now} for pid in profile_ids.values()],
                conflict=["channel", "profile"],
                # A no-op update, so that existing rows are returned too.
                update={"channel_id": "EXCLUDED.channel_id"},
                returning=["id", "profile"],
            )
        )
        rows = [{"conversation": conversation_ids[profile_ids[m.wa_id]], **message_row(m)} for m in messages]
        customer_of = {m.wamid: m.wa_id for m in messages}
        inserted = [
            (pk, wamid, conversation_ids[profile_ids[customer_of[wamid]]])
            for pk, wamid in insert_returning(Message, rows, conflict=["wamid"], returning=["id", "wamid"])
        ]
        conversation_of = {wamid: conversation_id for _, wamid, conversation_id in inserted}

    # Denormalised thread state for the console and the 24-hour window.
    per_conversation: dict[int, list[InboundMessage]] = defaultdict(list)
    for m in messages:
        if m.wamid in conversation_of:
            per_conversation[conversation_of.pop(m.wamid)].append(m)  # the same wamid twice in one body counts once
    threads = []
    for conversation_id, items in per_conversation.items():
        latest = max(items, key=lambda m: m.timestamp or now)
        at = latest.timestamp or now
        threads.append(
            {
                "id": conversation_id,
                "last_inbound_at": at,
                "last_message_preview": message_preview(type=latest.type, text=latest.text),
                "unread_count": len(items),
                "changed_at": now,
            }
        )
    if connection.vendor == "postgresql":
        update_from_values(
            Conversation,
            threads,
            fields=["last_inbound_at", "last_message_preview", "unread_count", "changed_at"],
            set={
                "last_inbound_at": "v.last_inbound_at",
                "last_message_at": "v.last_inbound_at",
                "last_message_preview": "v.last_message_preview",
                "unread_count": "T.unread_count + v.unread_count",
                "status": f"'{ConversationStatus.OPEN.value}'",
                "revision": "T.revision + 1",
                "changed_at": "v.changed_at",
            },
            cursor=cursor,
        )
    else:
        for thread in threads:
            Conversation.objects.filter(pk=thread["id"]).update(
                last_inbound_at=thread["last_inbound_at"],
                last_message_at=thread["last_inbound_at"],
                last_message_preview=thread["last_message_preview"],
                unread_count=F("unread_count") + thread["unread_count"],
                status=ConversationStatus.OPEN,
                revision=F("revision") + 1,
                changed_at=now,
            )
    return [(pk, wamid) for pk, wamid, _ in inserted]


def statuses_apply(*, statuses: Sequence[StatusEvent]) -> int:
    """Record delivery statuses and move outbound messages forward (never backwards)."""
    if not statuses:
        return 0
    StatusUpdate.objects.bulk_create(
        [
            StatusUpdate(
                wamid=s.wamid,
                status=s.status if s.status in MessageStatus.values else MessageStatus.FAILED,
                timestamp=s.timestamp,
                recipient_id=s.recipient_id,
                errors=s.errors,
                payload=s.payload,
            )
            for s in statuses
        ]
    )
    applied = 0
    for wamid in {s.wamid for s in statuses}:
        applied += status_updates_apply_for(wamid=wamid)
    return applied


def status_updates_apply_for(*, wamid: str) -> int:
    """Apply every stored, unapplied status for `wamid` to its message, in order."""
    pending = list(StatusUpdate.objects.filter(wamid=wamid, applied=False).order_by("timestamp", "id"))
    if not pending or not Message.objects.filter(wamid=wamid).exists():
        return 0  # the send has not stored its wamid yet: applied when it does
    changed = 0
    for update in pending:
        changed += _status_move(update)
    StatusUpdate.objects.filter(pk__in=[u.pk for u in pending]).update(applied=True)
    if changed:
        Conversation.objects.filter(messages__wamid=wamid).update(revision=F("revision") + 1, changed_at=timezone.now())
    return changed


def _status_move(update: StatusUpdate) -> int:
    rank = STATUS_RANK.get(update.status)
    if rank is None:
        logger.info("ignoring unknown status %r for %s", update.status, update.wamid)
        return 0
    values: dict = {"status": update.status, "status_rank": rank, f"{update.status}_at": update.timestamp}
    if update.status == MessageStatus.FAILED:
        error = (update.errors or [{}])[0]
        values.update(
            error_code=str(error.get("code") or ""),
            error_title=str(error.get("title") or "")[:255],
            error_detail=str((error.get("error_data") or {}).get("details") or error.get("message") or ""),
        )
    return Message.objects.filter(Q(wamid=update.wamid) & Q(status_rank__lt=rank)).update(**values)
