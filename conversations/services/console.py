"""What staff do in the console: take over, hand back, resolve, reopen, assign, reply (text,
image or document), react to a customer's message, send a template, notes.

Ownership changes are conditional updates, never check-then-set: when two staff members
press "Take over" at the same moment, PostgreSQL serialises the two UPDATEs on the row and
re-checks the second one's WHERE against the first one's result, so exactly one row count
is 1 and the other caller learns who got there first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from profiles.models import StaffPreference

from ..models import (
    Author,
    Conversation,
    ConversationNote,
    ConversationStatus,
    Direction,
    Message,
    MessageTemplate,
    MessageType,
    Owner,
)
from .attachments import CAPTION_MAX_LENGTH, Attachment
from .outbound import media_file_store, message_send
from .templates import TemplateValuesError, template_components, template_render, template_unsupported, template_values_check

NOTE_MAX_LENGTH = 4000
# WhatsApp's limit for a text message body.
REPLY_MAX_LENGTH = 4096


class ConsoleActionError(Exception):
    """The action cannot be done; the message is for the staff member."""


class TakenByOther(ConsoleActionError):
    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(_("%(name)s is already handling this conversation.") % {"name": holder})


class WindowClosed(ConsoleActionError):
    def __init__(self):
        super().__init__(
            _(
                "The 24-hour window is closed: the customer has not written in the last 24 hours. "
                "Only an approved template can be sent now."
            )
        )


def staff_name(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _changed(**values) -> dict:
    now = timezone.now()
    return {**values, "revision": F("revision") + 1, "changed_at": now}


@dataclass
class TakeOver:
    won: bool
    holder: str = ""  # who holds it, when not won


def conversation_take_over(*, conversation_id: int, user) -> TakeOver:
    """Make `user` the human owner. Wins when the bot owns the conversation, nobody is
    assigned, or `user` already is; loses (and says to whom) when another staff member holds it."""
    claimable = Q(owner=Owner.BOT) | Q(assigned_to__isnull=True) | Q(assigned_to=user)
    won = Conversation.objects.filter(claimable, pk=conversation_id).update(
        **_changed(owner=Owner.HUMAN, assigned_to=user, handoff_at=timezone.now(), status=ConversationStatus.OPEN)
    )
    if won:
        return TakeOver(won=True)
    holder = Conversation.objects.select_related("assigned_to").filter(pk=conversation_id).first()
    if holder is None:
        raise Conversation.DoesNotExist
    return TakeOver(won=False, holder=staff_name(holder.assigned_to))


def _update(conversation_id: int, **values) -> None:
    """Change the conversation and wake its pollers; Conversation.DoesNotExist if there is none."""
    if not Conversation.objects.filter(pk=conversation_id).update(**_changed(**values)):
        raise Conversation.DoesNotExist


def conversation_hand_back(*, conversation_id: int, user) -> None:
    """The bot answers again. Clears the assignment, the hand-off reason and the wait (a person's
    wait: what the customer writes next, the bot answers)."""
    _update(conversation_id, owner=Owner.BOT, assigned_to=None, handoff_reason="", handoff_at=None, waiting_since=None)


def conversation_resolve(*, conversation_id: int, user) -> None:
    """Done. The next customer message reopens it, and the bot answers it."""
    _update(
        conversation_id, status=ConversationStatus.RESOLVED, owner=Owner.BOT, assigned_to=None, handoff_reason="", unread_count=0,
        waiting_since=None,
    )  # fmt: skip


def conversation_reopen(*, conversation_id: int, user) -> None:
    _update(conversation_id, status=ConversationStatus.OPEN)


def conversation_assign(*, conversation_id: int, assignee, user) -> None:
    """Assign to a staff member (who then owns it instead of the bot), or to nobody (it
    waits in the queue for a human)."""
    if assignee is not None:
        _update(conversation_id, assigned_to=assignee, owner=Owner.HUMAN, status=ConversationStatus.OPEN)
    else:
        _update(conversation_id, assigned_to=None)


def conversation_mark_read(*, conversation_id: int) -> bool:
    """A staff member has the thread open: nothing is unread any more. Only the list shows
    the count, so only `changed_at` moves (the open thread's poll is not woken up)."""
    return bool(
        Conversation.objects.filter(pk=conversation_id, unread_count__gt=0).update(unread_count=0, changed_at=timezone.now())
    )


def conversation_note_add(*, conversation_id: int, user, text: str) -> ConversationNote:
    text = text.strip()
    if not text:
        raise ConsoleActionError(_("The note is empty."))
    if len(text) > NOTE_MAX_LENGTH:
        raise ConsoleActionError(_("The note is too long."))
    with transaction.atomic():
        _update(conversation_id)
        return ConversationNote.objects.create(conversation_id=conversation_id, author=user, text=text)


def conversation_reply(*, conversation_id: int, user, text: str, attachment: Attachment | None = None) -> Message:
    """A staff member's reply, free text or a checked file (`attachments.attachment_check`) with
    `text` as its caption: stored at once as pending (the file with it, in our storage),
    delivered by the Celery task after commit, which uploads the file first. Sending takes the
    conversation over (the bot stops answering)."""
    text = text.strip()
    if not text and attachment is None:
        raise ConsoleActionError(_("The message is empty."))
    if attachment is not None and len(text) > CAPTION_MAX_LENGTH:
        raise ConsoleActionError(_("The caption is too long (at most %(n)d characters).") % {"n": CAPTION_MAX_LENGTH})
    if len(text) > REPLY_MAX_LENGTH:
        raise ConsoleActionError(_("The message is too long (at most %(n)d characters).") % {"n": REPLY_MAX_LENGTH})
    with transaction.atomic():
        conversation = _window_open_locked(conversation_id)
        taken = conversation_take_over(conversation_id=conversation_id, user=user)
        if not taken.won:
            raise TakenByOther(taken.holder)
        conversation.refresh_from_db()
        if attachment is None:
            return message_send(conversation=conversation, text=text, author=Author.STAFF, user=user)
        message = message_send(
            conversation=conversation, text=text, author=Author.STAFF, user=user, type=attachment.kind,
            media=_media_of(attachment),
        )  # fmt: skip
        _attachment_store(message, attachment)
        return message


def _media_of(attachment: Attachment) -> dict:
    return {"mime_type": attachment.mime_type, "filename": attachment.filename, "size": attachment.size}


def _attachment_store(message: Message, attachment: Attachment) -> None:
    # Written inside the transaction, so the delivery queued on commit finds it; a failed
    # insert takes the file away again (`media_file_store`).
    media_file_store(
        message=message, content=attachment.content, mime_type=attachment.mime_type, filename=attachment.filename,
        sha256=attachment.sha256,
    )  # fmt: skip


def conversation_react(*, conversation_id: int, user, message_id: int, emoji: str) -> Message:
    """The business's reaction to a customer's message (REACTION_EMOJIS; empty: remove it): an
    outbound message of type reaction, delivered by the same task as a reply. It takes
    nothing over: a reaction is not an answer."""
    if emoji and emoji not in settings.REACTION_EMOJIS:
        raise ConsoleActionError(_("Choose one of the reactions offered."))
    target = (
        Message.objects.filter(pk=message_id, conversation_id=conversation_id, direction=Direction.INBOUND, wamid__isnull=False)
        .exclude(wamid="")
        .values_list("wamid", flat=True)
        .first()
    )
    if target is None:
        raise ConsoleActionError(_("Only a customer's message can be reacted to."))
    with transaction.atomic():
        conversation = _window_open_locked(conversation_id)
        return message_send(conversation=conversation, text=emoji, author=Author.STAFF, user=user, type=MessageType.REACTION, reply_to=target)


def _window_open_locked(conversation_id: int) -> Conversation:
    """The conversation, locked for the transaction; `WindowClosed` unless the customer wrote
    in the last 24 hours (only then does WhatsApp take anything but a template)."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if not conversation.window_open():
        raise WindowClosed()
    return conversation


class TemplateNotFilled(ConsoleActionError):
    """Values the template cannot be sent with: `errors` by variable key."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(" ".join(errors.values()))


def conversation_template_send(
    *, conversation_id: int, user, template_id: int, values: Mapping[str, str], attachment: Attachment | None = None
) -> Message:
    """A staff member sends an approved template, the only message WhatsApp allows once the
    24-hour window has closed: every variable checked, the message stored with the text the
    customer reads and, in `payload["template"]`, the template, its language and category
    (the delivery's marketing guard reads it there), the components as sent and the values;
    delivered like a reply. Sending takes the conversation over. `attachment`: a checked file
    (`attachments.attachment_check`) for an image or document header instead of its link,
    stored with the message like a reply's file; the delivery uploads it."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().select_related("channel").get(pk=conversation_id)
        account = conversation.channel.business_account_id
        template = MessageTemplate.objects.filter(pk=template_id, business_account_id=account).first() if account else None
        if template is None or not template.sendable:
            raise ConsoleActionError(_("This template cannot be sent: it is not approved, or no longer exists."))
        unsupported = template_unsupported(template)
        if unsupported:
            raise ConsoleActionError(unsupported)
        try:
            checked = template_values_check(template, values, attachment=attachment)
        except TemplateValuesError as exc:
            raise TemplateNotFilled(exc.errors) from None
        taken = conversation_take_over(conversation_id=conversation_id, user=user)
        if not taken.won:
            raise TakenByOther(taken.holder)
        conversation.refresh_from_db()
        sent = {
            "name": template.name, "language": {"code": template.language}, "category": template.category,
            "components": template_components(template, checked), "values": checked,
        }  # fmt: skip
        message = message_send(
            conversation=conversation, type=MessageType.TEMPLATE, text=template_render(template, checked), author=Author.STAFF,
            user=user, payload={"template": sent}, media=_media_of(attachment) if attachment else {},
        )  # fmt: skip
        if attachment is not None:
            _attachment_store(message, attachment)
        return message


def staff_language_set(*, user, language: str) -> str:
    StaffPreference.objects.update_or_create(user=user, defaults={"language": language})
    return language


def staff_notify_set(*, user, notify: bool, sound: bool) -> None:
    """Whether `user` is told of the conversations that need them by a desktop notification,
    and by a sound."""
    StaffPreference.objects.update_or_create(user=user, defaults={"notify": notify, "notify_sound": sound})
