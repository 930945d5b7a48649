"""Reads for the staff console: the conversation list, a thread, the profile panel.

Every function here is a bounded number of queries, whatever the size of the page:
the list is keyset-paginated on the `conv_recent_idx` index, threads on `msg_thread_idx`,
and the two polls are a single indexed query each.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Case, Count, F, Q, QuerySet, When
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from profiles.models import STANDARD_FIELDS, ClientProfile, StaffPreference
from profiles.selectors import profile_search_condition

from .decisions import needs_person_cause
from .models import (
    REVISION_TYPES,
    Author,
    BotConfig,
    Conversation,
    ConversationNote,
    ConversationStatus,
    Direction,
    MediaFile,
    MediaState,
    Message,
    MessageStatus,
    MessageTemplate,
    MessageType,
    Origin,
    Owner,
    QuickReply,
    TemplateStatus,
    pricing_category_label,
)
from .services.templates import template_unsupported

PAGE_SIZE = 50
THREAD_PAGE_SIZE = 40
# The list refreshes at most this many rows at once (what the operator has scrolled through).
LIST_REFRESH_MAX = 200
# Trigram indexes need three characters; shorter queries search the profile fields only.
MESSAGE_SEARCH_MIN_LENGTH = 3
# What a profile is "complete" with when no bot configuration says otherwise.
DEFAULT_FIELDS_TO_COLLECT = ("first_name", "last_name", "company", "email")


class ListFilter:
    ALL = "all"
    NEEDS_HUMAN = "queue"
    MINE = "mine"
    UNASSIGNED = "unassigned"
    RESOLVED = "resolved"

    CHOICES = (ALL, NEEDS_HUMAN, MINE, UNASSIGNED, RESOLVED)


# --- Conversation list -------------------------------------------------------------------


@dataclass
class ConversationPage:
    rows: list[Conversation]
    next_cursor: str  # empty when this is the last page


def _cursor_encode(conversation: Conversation) -> str:
    at = conversation.last_message_at.isoformat() if conversation.last_message_at else ""
    return base64.urlsafe_b64encode(f"{at}|{conversation.pk}".encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[datetime | None, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, pk = raw.split("|")
        return (parse_datetime(at) if at else None), int(pk)
    except (ValueError, TypeError):
        return None


def _after_cursor(queryset: QuerySet, cursor: str) -> QuerySet:
    decoded = _cursor_decode(cursor)
    if decoded is None:
        return queryset
    at, pk = decoded
    if at is None:
        # `ORDER BY last_message_at DESC` puts NULLs first (as the index stores them).
        return queryset.filter(Q(last_message_at__isnull=True, pk__lt=pk) | Q(last_message_at__isnull=False))
    # The redundant `<= at` is what lets PostgreSQL start the index scan at the cursor
    # instead of filtering every row before it.
    return queryset.filter(last_message_at__lte=at).filter(Q(last_message_at__lt=at) | Q(pk__lt=pk))


# A message-text search looks at the conversations of at most this many matching messages,
# newest first: a common word must not turn into a million-row IN list.
MESSAGE_SEARCH_LIMIT = 2000


def _search_condition(query: str) -> Q:
    """Name, WhatsApp name, company, email, number, and (3+ characters) any message text.

    On PostgreSQL both halves are trigram GIN index scans: the profile fields through one
    expression index, message text through `msg_text_trgm_idx` on `UPPER(text)` (the
    expression Django's `icontains` produces).
    """
    profile_match = profile_search_condition(query)
    # The matching ids are gathered first (a UNION of two index scans) and the list is built
    # from them: `profile IN (…) OR id IN (…)` would instead test every conversation.
    profiles = ClientProfile.objects.filter(profile_match).values("pk")
    if len(query) < MESSAGE_SEARCH_MIN_LENGTH:
        return Q(profile__in=profiles)
    recent_messages = Message.objects.filter(text__icontains=query).order_by("-pk").values("conversation_id")
    recent_messages = recent_messages[:MESSAGE_SEARCH_LIMIT]
    return Q(pk__in=Conversation.objects.filter(profile__in=profiles).values("pk").union(recent_messages))


def _filtered(*, user, list_filter: str, query: str) -> QuerySet:
    queryset = Conversation.objects.all()
    if list_filter == ListFilter.NEEDS_HUMAN:
        queryset = queryset.filter(owner=Owner.HUMAN, status=ConversationStatus.OPEN, assigned_to__isnull=True)
    elif list_filter == ListFilter.MINE:
        queryset = queryset.filter(assigned_to=user, status=ConversationStatus.OPEN)
    elif list_filter == ListFilter.UNASSIGNED:
        queryset = queryset.filter(assigned_to__isnull=True, status=ConversationStatus.OPEN)
    elif list_filter == ListFilter.RESOLVED:
        queryset = queryset.filter(status=ConversationStatus.RESOLVED)
    if query:
        queryset = queryset.filter(_search_condition(query))
    return queryset


def conversation_list(
    *, user, list_filter: str = ListFilter.ALL, query: str = "", cursor: str = "", limit: int = PAGE_SIZE
) -> ConversationPage:
    """One page of conversations, most recent first: one query (plus one for the
    completeness fields when the page is not empty)."""
    query = " ".join(query.split())[:100]
    queryset = _filtered(user=user, list_filter=list_filter, query=query)
    if cursor:
        queryset = _after_cursor(queryset, cursor)
    rows = list(
        queryset.select_related("profile", "assigned_to")
        # How long the customer has waited for a person (None: they do not).
        .annotate(waiting=Case(When(NEEDS_PERSON, then=F("waiting_since"))))
        .only(
            "id", "owner", "status", "assigned_to", "last_message_at", "last_message_preview", "unread_count",
            "changed_at", "channel_id", "handoff_reason",
            "profile__id", "profile__wa_id", "profile__user_id", "profile__username", "profile__profile_name",
            "profile__first_name", "profile__last_name", "profile__company", "profile__email", "profile__order_numbers",
            "profile__extra",
            "assigned_to__id", "assigned_to__username", "assigned_to__first_name", "assigned_to__last_name",
        )  # fmt: skip
        # NULLS FIRST is PostgreSQL's default for DESC, and how conv_recent_idx is stored.
        .order_by(F("last_message_at").desc(nulls_first=True), "-id")[: limit + 1]
    )
    next_cursor = _cursor_encode(rows[limit - 1]) if len(rows) > limit else ""
    rows = rows[:limit]
    if rows:
        wanted = fields_to_collect_by_channel()
        for row in rows:
            keys = wanted.get(row.channel_id) or wanted.get(None) or list(DEFAULT_FIELDS_TO_COLLECT)
            row.fields_wanted = len(keys)
            row.fields_filled = sum(1 for key in keys if row.profile.value_of(key))
    return ConversationPage(rows=rows, next_cursor=next_cursor)


# The customer waits for a person: one owns the open conversation and has not answered yet
# (`Conversation.waiting_since`; the partial index `conv_waiting_idx` holds exactly these rows).
NEEDS_PERSON = Q(waiting_since__isnull=False, owner=Owner.HUMAN, status=ConversationStatus.OPEN)
# A member of staff is told about at most this many waiting conversations at once.
NEEDS_PERSON_MAX = 100


def needs_person_condition(*, user) -> Q:
    """The conversations that need `user`: waiting for a person, and assigned to them or to
    nobody. The one place that says who is told."""
    return NEEDS_PERSON & (Q(assigned_to=user) | Q(assigned_to__isnull=True))


@dataclass
class Waiting:
    id: int
    name: str
    cause: str  # decisions.NeedsPerson
    since: datetime


def needs_person_for(*, user) -> list[Waiting]:
    """The conversations that need `user`, the longest wait first: one query on `conv_waiting_idx`."""
    rows = (
        Conversation.objects.filter(needs_person_condition(user=user))
        .select_related("profile")
        .only(
            "id", "waiting_since", "handoff_reason", "handoff_at",
            "profile__id", "profile__wa_id", "profile__user_id", "profile__username", "profile__profile_name",
            "profile__first_name", "profile__last_name",
        )  # fmt: skip
        .order_by("waiting_since", "id")[:NEEDS_PERSON_MAX]
    )
    return [
        Waiting(
            id=row.pk,
            name=row.profile.display_name,
            cause=needs_person_cause(
                handoff_reason=row.handoff_reason, handoff_at=row.handoff_at, waiting_since=row.waiting_since
            ),
            since=row.waiting_since,
        )
        for row in rows
    ]


def staff_menu(*, user) -> dict:
    """What the console's menu shows of a member of staff, in one query: whether they take
    hand-offs now (`services.desk.staff_availability_set`) and their notification toggles
    (the fields' defaults when they never saved a preference)."""
    names = ("available", "notify", "notify_sound")
    saved = StaffPreference.objects.filter(user=user).values(*names).first()
    saved = saved or {f.name: f.default for f in StaffPreference._meta.get_fields() if f.name in names}
    return {"available": saved["available"], "notify": saved["notify"], "sound": saved["notify_sound"]}


def conversations_last_change() -> datetime | None:
    """The newest `changed_at` of all conversations (the list poll's starting point)."""
    return Conversation.objects.order_by("-changed_at").values_list("changed_at", flat=True).first()


def conversations_changed_since(*, since: datetime) -> datetime | None:
    """The list poll: ONE query on `conv_changed_idx`, `SELECT changed_at … WHERE
    changed_at > since ORDER BY changed_at DESC LIMIT 1`. None when nothing changed."""
    return (
        Conversation.objects.filter(changed_at__gt=since)
        .order_by("-changed_at")
        .values_list("changed_at", flat=True)
        .first()
    )


# --- Bot configuration facts the console shows ---------------------------------------------


def _field_keys(raw) -> list[str]:
    keys = []
    for item in raw or []:
        key = item.get("key") if isinstance(item, dict) else item
        if isinstance(key, str) and key:
            keys.append(key)
    return keys


@dataclass
class CollectedFields:
    """What the active bot configurations collect: field keys per channel (None: every
    channel) and the labels of their extra fields."""

    by_channel: dict[int | None, list[str]]
    extra_labels: dict[str, str]


def collected_fields() -> CollectedFields:
    """One query on the active bot configurations."""
    by_channel: dict[int | None, list[str]] = {}
    labels: dict[str, str] = {}
    for channel_id, fields, extra in BotConfig.objects.filter(is_active=True).values_list(
        "channel_id", "fields_to_collect", "extra_fields"
    ):
        keys = _field_keys(fields) or list(DEFAULT_FIELDS_TO_COLLECT)
        keys += [k for k in _field_keys(extra) if k not in keys]
        by_channel[channel_id] = keys
        for item in extra or []:
            if isinstance(item, dict) and item.get("key"):
                labels[item["key"]] = str(item.get("label") or item["key"])
    return CollectedFields(by_channel=by_channel, extra_labels=labels)


def fields_to_collect_by_channel() -> dict[int | None, list[str]]:
    """{channel id (None: every channel): field keys} from the active bot configurations."""
    return collected_fields().by_channel


# --- One conversation ----------------------------------------------------------------------


def conversation_get(*, conversation_id: int) -> Conversation:
    return Conversation.objects.select_related("profile", "assigned_to", "channel").get(pk=conversation_id)


def conversation_poll(*, conversation_id: int, revision: int) -> dict | None:
    """The thread poll: ONE query by primary key, `SELECT revision, … WHERE id = %s AND
    revision > %s`. None when nothing changed (or the conversation is gone)."""
    return (
        Conversation.objects.filter(pk=conversation_id, revision__gt=revision)
        .values("revision", "last_inbound_at")
        .first()
    )


@dataclass
class Thread:
    messages: list[Message]
    has_older: bool
    oldest_id: int | None
    newest_id: int | None


def thread_messages(
    *, conversation_id: int, before_id: int | None = None, after_id: int | None = None, limit: int = THREAD_PAGE_SIZE
) -> Thread:
    """Messages oldest first. `before_id`: the page older than that; `after_id`: everything
    newer (the poll). Reactions are not bubbles: each is attached to the message it reacts
    to (`message.reactions`); a reply shows what it quotes (`message.quoted`). Edits and
    deletions are not bubbles either: the message they change shows them (`edited_at`,
    `earlier_texts`, `deleted_at`).

    A thread is read by id, the order messages were stored in, except for past chats
    imported from the WhatsApp Business app (`Origin.HISTORY`): they come in chunks, in any
    order, often after the first live messages, so their ids say nothing of their place.
    They are all older than the live messages (they predate the number's onboarding), so
    the thread is the imported part in time order (`msg_history_idx`), then the live part
    by id (`msg_thread_idx`, as before), and a page crosses from one to the other. The poll
    brings live messages only."""
    queryset = Message.objects.filter(conversation_id=conversation_id).exclude(type__in=[MessageType.REACTION, *REVISION_TYPES])
    # The media's row with each message (a join, not a query per media bubble).
    queryset = queryset.select_related("sent_by", "media_file")
    live, past = queryset.exclude(origin=Origin.HISTORY), queryset.filter(origin=Origin.HISTORY)
    past = past.order_by(F("provider_timestamp").desc(), "-pk")
    if after_id is not None:
        rows = list(live.filter(pk__gt=after_id).order_by("pk")[:200])
        has_older = False
    else:
        cursor = Message.objects.filter(pk=before_id).values("origin", "provider_timestamp").first() if before_id else None
        if cursor and cursor["origin"] == Origin.HISTORY:
            at = cursor["provider_timestamp"]
            rows = list(past.filter(Q(provider_timestamp__lt=at) | Q(provider_timestamp=at, pk__lt=before_id))[: limit + 1])
        else:
            rows = list((live.filter(pk__lt=before_id) if before_id else live).order_by("-pk")[: limit + 1])
            if len(rows) <= limit:
                rows += list(past[: limit + 1 - len(rows)])
        has_older = len(rows) > limit
        rows = rows[:limit][::-1]
    messages_decorate(conversation_id=conversation_id, messages=rows)
    previous_day = None
    for message in rows:
        message.day = message_day(message)
        message.show_day = message.day != previous_day
        previous_day = message.day
    return Thread(
        messages=rows,
        has_older=has_older,
        oldest_id=rows[0].pk if rows else before_id,
        newest_id=rows[-1].pk if rows else after_id,
    )


def media_stored(*, conversation_id: int, message_id: int) -> MediaFile | None:
    """A message's stored media, if the message is in that conversation (None otherwise)."""
    return (
        MediaFile.objects.select_related("message")
        .only("pk", "file", "mime_type", "filename", "size", "message__type", "message__conversation_id")
        .filter(pk=message_id, message__conversation_id=conversation_id, state=MediaState.STORED)
        .exclude(file="")
        .first()
    )


def messages_decorate(*, conversation_id: int, messages: list[Message]) -> None:
    """Attach reactions and quoted messages: two queries for the whole page at most.

    Each side has one reaction on a message, its latest (the customer's, and the business's
    from the console); an empty emoji removes it. A reaction of ours that failed changes
    nothing on WhatsApp: the one before it stays, and the failure shows on the message
    (`reaction_failures`) until a later reaction goes through."""
    for message in messages:
        message.reactions = []
        message.reaction_failures = []
        message.our_reaction = ""  # the business's (staff's) current reaction
        message.quoted = None
    wamids = [m.wamid for m in messages if m.wamid]
    if wamids:
        latest: dict[str, Message] = {}
        failed: dict[str, Message] = {}
        for reaction in (
            Message.objects.filter(conversation_id=conversation_id, type=MessageType.REACTION, context_wamid__in=wamids)
            .only("id", "text", "author", "context_wamid", "status", "error_title")
            .order_by("pk")
        ):
            key = f"{reaction.context_wamid}|{reaction.author}"
            if reaction.status == MessageStatus.FAILED:
                failed[key] = reaction
            else:
                latest[key] = reaction  # a later reaction replaces an earlier one
                failed.pop(key, None)
        by_wamid = {m.wamid: m for m in messages if m.wamid}
        for reaction in latest.values():
            if reaction.text:  # an empty emoji removes the reaction
                by_wamid[reaction.context_wamid].reactions.append(reaction)
                if reaction.author == Author.STAFF:
                    by_wamid[reaction.context_wamid].our_reaction = reaction.text
        for reaction in failed.values():
            by_wamid[reaction.context_wamid].reaction_failures.append(reaction)
    quoted_wamids = {m.context_wamid for m in messages if m.context_wamid}
    if quoted_wamids:
        quoted = {
            q.wamid: q
            for q in Message.objects.filter(wamid__in=quoted_wamids).only("id", "wamid", "text", "type", "author", "deleted_at")
        }
        for message in messages:
            message.quoted = quoted.get(message.context_wamid)


def message_day(message: Message):
    return timezone.localtime(message.provider_timestamp or message.created_at).date()


@dataclass
class PricingRow:
    category: str
    label: str
    messages: int  # messages WhatsApp priced in this category
    billable: int  # of which it charges for


def conversation_pricing(*, conversation_id: int) -> list[PricingRow]:
    """What WhatsApp priced in the conversation, by category: one query (the thread index)."""
    rows = (
        Message.objects.filter(conversation_id=conversation_id, direction=Direction.OUTBOUND, pricing_at__isnull=False)
        .values(category=KT("pricing__category"))
        .annotate(messages=Count("id"), billable=Count("id", filter=Q(pricing__billable=True)))
        .order_by("-billable", "category")
    )
    return [PricingRow(r["category"] or "", pricing_category_label(r["category"] or ""), r["messages"], r["billable"]) for r in rows]


def conversation_notes(*, conversation_id: int) -> list[ConversationNote]:
    return list(ConversationNote.objects.filter(conversation_id=conversation_id).select_related("author"))


def quick_replies_active() -> list[dict]:
    return list(QuickReply.objects.filter(is_active=True).values("shortcut", "title", "text"))


def staff_members() -> list:
    """Active staff, each with `available` (takes hand-offs now; `services.desk`)."""
    return list(
        get_user_model()
        .objects.filter(is_active=True, is_staff=True)
        .annotate(available=Coalesce("console_preference__available", False))
        .only("id", "username", "first_name", "last_name")
        .order_by("first_name", "username")
    )


# --- Client profile panel ---------------------------------------------------------------------


@dataclass
class ProfileField:
    key: str
    label: str
    value: str
    source: str | None  # FieldSource value, or None when never set
    at: datetime | None
    user: str = ""
    message: Message | None = None
    history: list = field(default_factory=list)

    @property
    def missing(self) -> bool:
        return not self.value


def profile_panel(*, conversation: Conversation) -> list[ProfileField]:
    """The fields the bot collects for this conversation's channel (plus any field that has
    a value), with where each value came from. Two queries at most: bot configs (fields and
    labels in one), source messages (none when no value came from a message)."""
    profile = conversation.profile
    collected = collected_fields()
    wanted = collected.by_channel
    keys = list(wanted.get(conversation.channel_id) or wanted.get(None) or DEFAULT_FIELDS_TO_COLLECT)
    for key in STANDARD_FIELDS:
        if key not in keys and profile.value_of(key):
            keys.append(key)
    for key in profile.extra:
        if key not in keys:
            keys.append(key)
    labels = {name: str(ClientProfile._meta.get_field(name).verbose_name) for name in STANDARD_FIELDS if name != "order_number"}
    labels["order_number"] = str(ClientProfile._meta.get_field("order_numbers").verbose_name)
    labels.update(collected.extra_labels)
    fields = []
    message_ids = set()
    for key in keys:
        entry = profile.provenance.get(key) or {}
        at = parse_datetime(entry["at"]) if entry.get("at") else None
        if entry.get("message_id"):
            message_ids.add(entry["message_id"])
        value = ", ".join(profile.order_numbers) if key == "order_number" else profile.value_of(key)
        fields.append(
            ProfileField(
                key=key,
                label=labels.get(key, key.replace("_", " ")),
                value=value,
                source=entry.get("source"),
                at=at,
                user=entry.get("user", ""),
            )
        )
        fields[-1].message_id = entry.get("message_id")
    if message_ids:
        messages = Message.objects.in_bulk(message_ids)
        for f in fields:
            f.message = messages.get(f.message_id)
    return fields


def profile_field_keys(*, conversation: Conversation) -> set[str]:
    """Fields staff may edit on this conversation's profile."""
    wanted = fields_to_collect_by_channel()
    keys = set(wanted.get(conversation.channel_id) or wanted.get(None) or DEFAULT_FIELDS_TO_COLLECT)
    keys.update(STANDARD_FIELDS)
    keys.update(conversation.profile.extra)
    return keys


def _language_base(code: str) -> str:
    return code.lower().replace("-", "_").split("_")[0]


def templates_offered(*, conversation: Conversation) -> list[MessageTemplate]:
    """The approved templates of the conversation's business account, in the customer's
    language first; each with `disabled_reason` ("" when it can be sent to this customer)."""
    account = conversation.channel.business_account_id
    if not account:
        return []
    templates = list(
        MessageTemplate.objects.filter(
            business_account_id=account, status=TemplateStatus.APPROVED, deleted_at__isnull=True, synced_at__isnull=False
        )
    )
    language = _language_base(conversation.profile.language or "")
    templates.sort(key=lambda t: (not language or _language_base(t.language) != language, t.name, t.language))
    for template in templates:
        template.disabled_reason = template_unsupported(template)
        if not template.disabled_reason and template.marketing and conversation.profile.marketing_stopped:
            template.disabled_reason = gettext("The customer stopped marketing messages: a marketing template is not sent to them.")
    return templates


def template_offered(*, conversation: Conversation, template_id) -> MessageTemplate | None:
    for template in templates_offered(conversation=conversation):
        if str(template.pk) == str(template_id):
            return template
    return None
