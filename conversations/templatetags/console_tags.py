"""Small presentation helpers for the console templates."""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.conf import settings
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from heroicons.templatetags.heroicons import heroicon_micro

from ..models import MessageType, Origin, Owner, pricing_category_label
from ..services.attachments import ACCEPT as ATTACHMENT_ACCEPT
from ..services.attachments import KINDS
from ..texts import stored_text_translate

register = template.Library()


@register.filter
def stored_text(text: str) -> str:
    """A reason a worker stored (a hand-off, a failure), in the reader's language."""
    return stored_text_translate(text)


@register.filter
def owner_state(conversation) -> str:
    """bot, queue (a human is needed and nobody has it), or human."""
    if conversation.owner == Owner.BOT:
        return "bot"
    return "human" if conversation.assigned_to_id else "queue"


@register.filter
def staff_name(user) -> str:
    if not user:
        return ""
    return user.get_full_name() or user.get_username()


@register.filter
def initials(name: str) -> str:
    letters = [w[0] for w in str(name).replace("+", "").replace("@", "").split() if w]
    return ("".join(letters[:2]) or "?").upper()


@register.filter
def list_time(value: datetime | None, today: date | None = None) -> str:
    """WhatsApp-style: the time today, "yesterday", the weekday this week, else the date.
    (`today`: for a caller formatting many rows; a template uses it as a plain filter.)"""
    if not value:
        return ""
    local = timezone.localtime(value)
    days = ((today or timezone.localdate()) - local.date()).days
    if days <= 0:
        return local.strftime("%H:%M")  # "H:i", without the format machinery (50 rows a page)
    if days == 1:
        return _("yesterday")
    if days < 7:
        return formats.date_format(local, "l")
    return formats.date_format(local, "SHORT_DATE_FORMAT")


def waited(since: datetime | None, now: datetime) -> str:
    """"3 min", "1 h 20": how long since `since` (empty when None). console.js ticks it on
    with the same words (inbox.html gives it them)."""
    if since is None:
        return ""
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return _("%(m)s min") % {"m": minutes}
    return _("%(h)s h %(mm)s") % {"h": minutes // 60, "mm": f"{minutes % 60:02d}"}


@register.filter
def day_label(value: date) -> str:
    days = (timezone.localdate() - value).days
    if days == 0:
        return _("Today")
    if days == 1:
        return _("Yesterday")
    return formats.date_format(value, "DATE_FORMAT")


@register.filter
def local_time(value: datetime | None) -> str:
    # "H:i" in every language; strftime is a tenth of the cost of `time_format` (40 bubbles a page).
    return timezone.localtime(value).strftime("%H:%M") if value else ""


@register.filter
def local_iso(value: datetime | None) -> str:
    """What `|date:'c'` gives (ISO 8601 in the current time zone), for a `datetime=` attribute."""
    return timezone.localtime(value).isoformat() if value else ""


# Outgoing message status -> (CSS class and data-status, title, icon), like WhatsApp's ticks; the icons are
# rendered once here, not once per bubble. Two checks overlap (CSS) where WhatsApp shows a double tick.
_CHECK = heroicon_micro("check", size=14)
_TICKS = {
    "pending": ("pending", gettext_lazy("Pending"), heroicon_micro("clock", size=13)),
    "sent": ("sent", gettext_lazy("Sent"), _CHECK),
    "delivered": ("delivered", gettext_lazy("Delivered"), _CHECK + _CHECK),
    "read": ("read", gettext_lazy("Read"), _CHECK + _CHECK),
    "played": ("read", gettext_lazy("Read"), _CHECK + _CHECK),
    "failed": ("failed", gettext_lazy("Not delivered"), heroicon_micro("exclamation-triangle", size=14)),
}
_BILLABLE = heroicon_micro("credit-card", size=13)
_FREE = heroicon_micro("gift", size=13)


@register.filter
def tick(message) -> str:
    """The tick of an outgoing message: one filter call per bubble instead of an if-chain."""
    if message.direction != "out" or message.status not in _TICKS:
        return ""
    css, title, icon = _TICKS[message.status]
    return format_html('<span class="tick {}" role="img" title="{}" aria-label="{}" data-status="{}">{}</span>', css, title, title, css, icon)  # fmt: skip


@register.filter
def billing(message) -> str:
    """A mark on an outgoing message WhatsApp priced: whether it charges for it, and the category."""
    billable = message.billable if message.direction == "out" else None
    if billable is None:
        return ""
    category = pricing_category_label(message.pricing.get("category", ""))
    if billable:
        title = _("Billable (%(category)s)") % {"category": category}
        return format_html('<span class="billing billable" role="img" title="{}" aria-label="{}" data-billable="true">{}</span>', title, title, _BILLABLE)  # fmt: skip
    title = _("Free (%(category)s)") % {"category": category}
    return format_html('<span class="billing free" role="img" title="{}" aria-label="{}" data-billable="false">{}</span>', title, title, _FREE)  # fmt: skip


@register.filter
def map_url(message) -> str:
    location = (message.payload or {}).get("location") or {}
    try:
        lat, lon = float(location["latitude"]), float(location["longitude"])
    except (KeyError, TypeError, ValueError):
        return ""
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=17/{lat:.6f}/{lon:.6f}"


@register.filter
def media_kind(message) -> str:
    """How a message's file is shown: as its type, except a template's (its header's), an image or a document."""
    if message.type != MessageType.TEMPLATE:
        return message.type
    return KINDS.get((message.media or {}).get("mime_type", ""), MessageType.DOCUMENT)


@register.filter
def contact_cards(message) -> list[dict]:
    cards = []
    for card in (message.payload or {}).get("contacts") or []:
        if not isinstance(card, dict):
            continue
        cards.append(
            {
                "name": (card.get("name") or {}).get("formatted_name") or "",
                "phones": [p.get("phone", "") for p in card.get("phones") or [] if isinstance(p, dict)],
                "emails": [e.get("email", "") for e in card.get("emails") or [] if isinstance(e, dict)],
            }
        )
    return cards


@register.filter
def sender_label(message) -> str:
    if message.origin == Origin.BUSINESS_APP:
        return _("From the WhatsApp Business app")
    if message.origin == Origin.HISTORY and message.author == "staff":
        return _("WhatsApp Business app (earlier chat)")
    if message.author == "bot":
        return _("Bot")
    if message.author == "staff":
        return staff_name(message.sent_by) or _("Staff")
    if message.author == "system":
        return _("System")
    return ""


@register.filter
def retention_days(media_file) -> int:
    """How many days a media file was kept before retention deleted it."""
    if not media_file.deleted_at or not media_file.stored_at:
        return 0
    return (media_file.deleted_at - media_file.stored_at).days


@register.simple_tag
def attachment_accept() -> str:
    """The composer's file input `accept`: the types WhatsApp takes (the server checks the bytes)."""
    return ATTACHMENT_ACCEPT


@register.simple_tag
def reaction_emojis() -> list[str]:
    """The emoji staff can react with (REACTION_EMOJIS)."""
    return settings.REACTION_EMOJIS
