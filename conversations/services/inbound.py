"""Storing what the customer sends, and the delivery statuses of what we sent."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from django.db.models import F, Q
from django.utils import timezone

from profiles.models import ClientProfile
from webhooks.meta import InboundMessage, StatusEvent

from ..db import insert_returning
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


def inbound_messages_store(*, channel: Channel, messages: Sequence[InboundMessage]) -> list[int]:
    """Store a webhook's messages for one channel; return the ids of the ones that are new.

    Runs inside the caller's transaction. Profiles and conversations are upserted in one
    statement each; messages are inserted under the unique `wamid`, so a duplicate delivery
    (Meta retries for days) inserts nothing and returns nothing.
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
    profile_ids = dict(
        (wa_id, pk)
        for pk, wa_id in insert_returning(
            ClientProfile,
            list(profiles.values()),
            conflict=["wa_id"],
            update={
                "profile_name": "CASE WHEN EXCLUDED.profile_name <> '' THEN EXCLUDED.profile_name ELSE T.profile_name END",
                "last_contact_at": "CASE WHEN T.last_contact_at IS NULL OR EXCLUDED.last_contact_at > T.last_contact_at "
                "THEN EXCLUDED.last_contact_at ELSE T.last_contact_at END",
            },
            returning=["id", "wa_id"],
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

    rows = []
    for m in messages:
        rows.append(
            {
                "conversation": conversation_ids[profile_ids[m.wa_id]],
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
        )
    inserted = insert_returning(Message, rows, conflict=["wamid"], returning=["id", "wamid"])
    new_wamids = {wamid for _, wamid in inserted}

    # Denormalised thread state for the console and the 24-hour window, one UPDATE per thread.
    per_conversation: dict[int, list[InboundMessage]] = defaultdict(list)
    for m in messages:
        if m.wamid in new_wamids:
            per_conversation[conversation_ids[profile_ids[m.wa_id]]].append(m)
            new_wamids.discard(m.wamid)  # the same wamid twice in one body counts once
    for conversation_id, items in per_conversation.items():
        latest = max(items, key=lambda m: m.timestamp or now)
        at = latest.timestamp or now
        Conversation.objects.filter(pk=conversation_id).update(
            last_inbound_at=at,
            last_message_at=at,
            last_message_preview=message_preview(type=latest.type, text=latest.text),
            unread_count=F("unread_count") + len(items),
            status=ConversationStatus.OPEN,
            revision=F("revision") + 1,
            changed_at=now,
        )
    return [pk for pk, _ in inserted]


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
