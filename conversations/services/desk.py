"""The desk: who is in, and who takes a hand-off.

Staff say they are available or away (`staff_availability_set`); a hand-off in business
hours goes to the least busy available agent (`sql.assign`, the one choice, which the turn's
commit embeds and `conversation_auto_assign` runs for the other paths); one outside them, or
when nobody is available, waits in the queue. An agent going away hands their open
conversations on, so nothing waits with someone who is not there.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from profiles.models import StaffPreference

from ..hours import BusinessHours, business_hours_open
from ..models import Channel, ClosedDay, Conversation, ConversationStatus, OpeningHours, Owner
from ..sql.assign import handoff_assign

logger = logging.getLogger(__name__)


def business_hours_of(*, channel: Channel) -> BusinessHours | None:
    """The channel's business hours (None: none set, always open). Closed days from
    yesterday on (any time zone's today is among them)."""
    ranges = tuple(OpeningHours.objects.filter(channel=channel).values_list("weekday", "opens", "closes"))
    if not ranges:
        return None
    since = timezone.now().date() - timedelta(days=1)
    closed = frozenset(ClosedDay.objects.filter(channel=channel, date__gte=since).values_list("date", flat=True))
    return BusinessHours(time_zone=channel.time_zone or settings.TIME_ZONE, ranges=ranges, closed=closed)


def conversation_auto_assign(*, conversation_id: int) -> int | None:
    """A conversation that has just gone to the human queue (unassigned) goes to the least
    busy available agent, in business hours; the agent's id, or None (it waits in the queue)."""
    channel = Channel.objects.filter(conversations__pk=conversation_id).only("pk", "time_zone").first()
    now = timezone.now()
    if channel is None or not business_hours_open(business_hours_of(channel=channel), now):
        return None
    return handoff_assign(conversation_id=conversation_id, now=now)


def staff_availability_set(*, user, available: bool) -> int:
    """The staff member is available (hand-offs come to them) or away. Going away hands on
    each of their open human-owned conversations: to another available agent, or back to
    the queue. Returns how many were handed on."""
    with transaction.atomic():
        StaffPreference.objects.update_or_create(user=user, defaults={"available": available})
        if available:
            return 0
        mine = Conversation.objects.filter(assigned_to=user, owner=Owner.HUMAN, status=ConversationStatus.OPEN)
        ids = list(mine.select_for_update().order_by("pk").values_list("pk", flat=True))
        now = timezone.now()
        # Conditional: one the agent no longer holds (reassigned meanwhile) is left alone.
        handed_back = Conversation.objects.filter(pk__in=ids, assigned_to=user)
        handed_back.update(assigned_to=None, revision=F("revision") + 1, changed_at=now)
        for conversation_id in ids:
            conversation_auto_assign(conversation_id=conversation_id)
    if ids:
        logger.info("staff %s went away: %d conversation(s) handed on", user.pk, len(ids))
    return len(ids)
