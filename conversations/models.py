import zoneinfo
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

# Meta keeps a customer-service window open for 24 hours after the customer's last message.
SERVICE_WINDOW = timezone.timedelta(hours=24)


class Provider(models.TextChoices):
    META = "meta", "Meta WhatsApp Cloud API"
    TWILIO = "twilio", "Twilio"
    SANDBOX = "sandbox", _("Sandbox (simulator)")


def time_zone_check(value: str) -> None:
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone %(name)s: use a name like Europe/Rome."), params={"name": value})


class Channel(models.Model):
    """One WhatsApp business number and the credentials to use it."""

    name = models.CharField(_("name"), max_length=120)
    provider = models.CharField(_("provider"), max_length=16, choices=Provider.choices, default=Provider.META)
    phone_number_id = models.CharField(_("phone number id"), max_length=64, unique=True)
    display_phone_number = models.CharField(_("display number"), max_length=32, blank=True)
    business_account_id = models.CharField(_("business account id"), max_length=64, blank=True)
    # Secrets: write-only in admin, never logged.
    access_token = models.TextField(_("access token"), blank=True)
    app_secret = models.CharField(_("app secret"), max_length=255, blank=True)
    verify_token = models.CharField(_("verify token"), max_length=255, blank=True)
    api_version = models.CharField(_("Graph API version"), max_length=16, blank=True)
    # The business hours' time zone (`OpeningHours`, `ClosedDay`); blank: TIME_ZONE.
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, validators=[time_zone_check],
        help_text=_("For the business hours, e.g. Europe/Rome; blank: the server's."),
    )  # fmt: skip
    is_active = models.BooleanField(_("active"), default=True)
    # Created from WHATSAPP_* environment variables (kept in sync at start-up).
    from_environment = models.BooleanField(_("from the environment"), default=False, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.display_phone_number or self.phone_number_id})"

    @property
    def graph_api_version(self) -> str:
        return self.api_version or settings.WHATSAPP_API_VERSION


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OpeningHours(models.Model):
    """One range of a channel's weekly business hours (a day may have several). A channel
    with none is always open. Outside them the bot answers as usual; a hand-off waits in the
    queue and the customer is told when a person is back (`conversations.hours`)."""

    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(_("day"), choices=Weekday.choices)
    opens = models.TimeField(_("opens"))
    closes = models.TimeField(_("closes"), help_text=_("00:00 means midnight (the end of the day)."))

    class Meta:
        verbose_name = _("opening hours")
        verbose_name_plural = _("opening hours")
        ordering = ["weekday", "opens"]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        if self.opens is not None and self.closes is not None and self.closes != datetime.min.time() and self.closes <= self.opens:
            raise ValidationError({"closes": _("Closes before it opens: a range ends on its own day (00:00 is midnight).")})


class ClosedDay(models.Model):
    """A date a channel's business is closed all day (a holiday), whatever its weekly hours."""

    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.CASCADE, related_name="closed_days")
    date = models.DateField(_("date"))
    name = models.CharField(_("name"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("closed day")
        verbose_name_plural = _("closed days")
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["channel", "date"], name="one_closed_day_per_channel_date")]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}".strip()


class Owner(models.TextChoices):
    BOT = "bot", _("Bot")
    HUMAN = "human", _("Human")


class ConversationStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class Conversation(models.Model):
    """The thread between one customer and one business number."""

    # No index of its own: the unique (channel, profile) constraint's index leads with it.
    channel = models.ForeignKey(
        Channel, verbose_name=_("channel"), on_delete=models.PROTECT, related_name="conversations", db_index=False,
    )
    profile = models.ForeignKey(
        "profiles.ClientProfile", verbose_name=_("customer"), on_delete=models.CASCADE, related_name="conversations",
    )
    owner = models.CharField(_("owner"), max_length=8, choices=Owner.choices, default=Owner.BOT)
    status = models.CharField(_("status"), max_length=12, choices=ConversationStatus.choices, default=ConversationStatus.OPEN)
    assigned_to = models.ForeignKey(  # indexed by conv_assigned_idx, which leads with it
        settings.AUTH_USER_MODEL, verbose_name=_("assigned to"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="assigned_conversations",
        db_index=False,
    )
    handoff_reason = models.CharField(_("hand-off reason"), max_length=255, blank=True)
    handoff_at = models.DateTimeField(_("handed off"), null=True, blank=True)

    # Denormalised for the console list and the 24-hour window.
    last_inbound_at = models.DateTimeField(_("last customer message"), null=True, blank=True)
    last_message_at = models.DateTimeField(_("last message"), null=True, blank=True)
    last_message_preview = models.CharField(_("last message preview"), max_length=160, blank=True)
    unread_count = models.PositiveIntegerField(_("unread"), default=0)
    # Since when the customer has waited for an answer: their first message since the business
    # last wrote (kept by the statements that store messages). With a person owning the open
    # conversation it is the console's "needs a person" (`selectors.NEEDS_PERSON`).
    waiting_since = models.DateTimeField(_("waiting since"), null=True, blank=True)

    # Bumped on every change the console shows (message, status tick, ownership): a poll
    # compares one integer on one row.
    revision = models.BigIntegerField(_("revision"), default=0)
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)

    # OpenAI Conversations API state (one OpenAI conversation at a time; rotated when idle).
    openai_conversation_id = models.CharField(_("OpenAI conversation id"), max_length=128, blank=True)
    openai_conversation_started_at = models.DateTimeField(_("OpenAI conversation started"), null=True, blank=True)
    summary = models.TextField(_("summary of earlier conversation"), blank=True)
    # The newest message the OpenAI conversation holds (as a reply's input, the summary that
    # seeded it, or an item added before a reply): what came after it and is not the burst
    # (a hand-off's texts, staff replies) is added before the next reply (`memory.unsynced_rows`).
    openai_synced_message_id = models.BigIntegerField(_("last message the OpenAI conversation has"), null=True, blank=True)

    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        constraints = [models.UniqueConstraint(fields=["channel", "profile"], name="one_conversation_per_profile_channel")]
        indexes = [
            models.Index(fields=["-last_message_at", "-id"], name="conv_recent_idx"),
            models.Index(fields=["owner", "status", "-last_message_at"], name="conv_queue_idx"),
            models.Index(fields=["assigned_to", "-last_message_at"], name="conv_assigned_idx"),
            models.Index(fields=["-changed_at"], name="conv_changed_idx"),
            # Only the conversations waiting for a person: the console's notification poll.
            models.Index(
                fields=["waiting_since"], name="conv_waiting_idx",
                condition=models.Q(waiting_since__isnull=False, owner=Owner.HUMAN, status=ConversationStatus.OPEN),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.profile} @ {self.channel.name}"

    @property
    def window_closes_at(self):
        return self.last_inbound_at + SERVICE_WINDOW if self.last_inbound_at else None

    def window_open(self, now=None) -> bool:
        closes = self.window_closes_at
        return bool(closes and closes > (now or timezone.now()))


class Direction(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


class Author(models.TextChoices):
    CUSTOMER = "customer", _("Customer")
    BOT = "bot", _("Bot")
    STAFF = "staff", _("Staff")
    SYSTEM = "system", _("System")


class MessageType(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    DOCUMENT = "document", _("Document")
    STICKER = "sticker", _("Sticker")
    LOCATION = "location", _("Location")
    CONTACTS = "contacts", _("Contacts")
    INTERACTIVE = "interactive", _("Interactive reply")
    BUTTON = "button", _("Template button")
    REACTION = "reaction", _("Reaction")
    ORDER = "order", _("Order")
    SYSTEM = "system", _("System")
    TEMPLATE = "template", _("Template")
    EDIT = "edit", _("Edit")
    REVOKE = "revoke", _("Deletion")
    UNSUPPORTED = "unsupported", _("Unsupported")
    UNKNOWN = "unknown", _("Unknown")


class MessageStatus(models.TextChoices):
    RECEIVED = "received", _("Received")  # inbound
    PENDING = "pending", _("Pending")  # outbound, stored, not yet accepted by the provider
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    PLAYED = "played", _("Played")
    FAILED = "failed", _("Failed")


class Origin(models.TextChoices):
    """Where a message was written, when not through this product (coexistence: one number
    shared by the WhatsApp Business app and the Cloud API)."""

    PRODUCT = "", _("This product")
    BUSINESS_APP = "business_app", _("WhatsApp Business app")  # an echo of what the owner wrote there
    HISTORY = "history", _("WhatsApp Business app history")  # a past chat imported at onboarding


# Types that are the customer talking to us in words (what the agent answers).
TEXT_TYPES = (MessageType.TEXT, MessageType.INTERACTIVE, MessageType.BUTTON)
# Types whose message carries a file (the provider's media id in `Message.media["id"]`).
MEDIA_TYPES = (MessageType.IMAGE, MessageType.AUDIO, MessageType.VIDEO, MessageType.DOCUMENT, MessageType.STICKER)
# Media the agent can understand: a voice note once transcribed, an image given to the model
# (with its caption) once stored. Other media get the acknowledgement.
UNDERSTOOD_MEDIA_TYPES = (MessageType.AUDIO, MessageType.IMAGE)
# Types that need no answer at all.
SILENT_TYPES = (MessageType.REACTION, MessageType.SYSTEM)
# Types that change another message (the one their `context_wamid` names) instead of adding
# one: an edit carries its new text, a deletion nothing. Applied to that message when stored
# (`sql.ingest.revisions_apply`); never a bubble, never unread, never answered.
REVISION_TYPES = (MessageType.EDIT, MessageType.REVOKE)

PREVIEW_LENGTH = 160
# The template category a customer can stop (WhatsApp's "Offers and announcements").
MARKETING = "marketing"


def message_preview(*, type: str, text: str, deleted: bool = False) -> str:
    """The conversation list's one-line preview of a message."""
    if deleted:
        # Stored, for every member of staff: in the business's language, as the bot speaks.
        with translation.override(settings.LANGUAGE_CODE):
            return str(_("This message was deleted"))
    text = " ".join(text.split())
    if type == MessageType.TEXT:
        return text[:PREVIEW_LENGTH]
    label = f"[{type}]"
    return f"{label} {text}"[:PREVIEW_LENGTH] if text else label


# The pricing categories WhatsApp reports a message under; one it adds shows by its name.
PRICING_CATEGORIES = {
    "marketing": _("Marketing"),
    "marketing_lite": _("Marketing (lite)"),
    "utility": _("Utility"),
    "authentication": _("Authentication"),
    "authentication-international": _("Authentication (international)"),
    "service": _("Service"),
    "referral_conversion": _("Free entry point"),
}


def pricing_category_label(category: str) -> str:
    return str(PRICING_CATEGORIES.get(category, category or "—"))


# Delivery statuses only move forward: a late `delivered` after `read` changes nothing.
STATUS_RANK = {
    MessageStatus.RECEIVED: 0,
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
    MessageStatus.PLAYED: 4,
    MessageStatus.FAILED: 5,
}


class Message(models.Model):
    # Indexed by msg_thread_idx (conversation, -id), which leads with it.
    conversation = models.ForeignKey(
        Conversation, verbose_name=_("conversation"), on_delete=models.CASCADE, related_name="messages", db_index=False,
    )
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    author = models.CharField(_("author"), max_length=10, choices=Author.choices)
    type = models.CharField(_("type"), max_length=16, choices=MessageType.choices, default=MessageType.TEXT)
    text = models.TextField(_("text"), blank=True)  # body, caption, or a readable rendering of the content
    payload = models.JSONField(_("payload"), default=dict, blank=True)  # the provider's message object as received / sent
    media = models.JSONField(_("media"), default=dict, blank=True)  # id, mime_type, sha256, filename, caption, voice...
    context_wamid = models.CharField(_("in reply to"), max_length=255, blank=True)  # the message this one replies or reacts to
    referral = models.JSONField(_("ad referral"), default=dict, blank=True)  # click-to-WhatsApp ad
    # An edited message shows its latest text; the earlier ones, oldest first, are kept as
    # [{"text": ..., "at": ISO 8601}] (`at`: when that version was written). A deleted one
    # keeps its text, shown to staff behind a click: the bot may have answered it or taken
    # details from it, and staff cannot follow the thread without knowing what it said; the
    # bot never reads it again. Both written by `sql.ingest.revisions_apply` only.
    edited_at = models.DateTimeField(_("edited"), null=True, blank=True)
    earlier_texts = models.JSONField(_("earlier texts"), default=list, blank=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)

    wamid = models.CharField(_("WhatsApp message id"), max_length=255, null=True, blank=True)  # unique: message_wamid_uniq
    provider_timestamp = models.DateTimeField(_("provider time"), null=True, blank=True)
    origin = models.CharField(_("origin"), max_length=12, choices=Origin.choices, default=Origin.PRODUCT, blank=True)

    status = models.CharField(_("status"), max_length=10, choices=MessageStatus.choices)
    status_rank = models.PositiveSmallIntegerField(_("status rank"), default=0)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    played_at = models.DateTimeField(_("played"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed"), null=True, blank=True)
    error_code = models.CharField(_("error code"), max_length=32, blank=True)
    error_title = models.CharField(_("error"), max_length=255, blank=True)
    error_detail = models.TextField(_("error detail"), blank=True)
    # What the provider said the message costs (`billable`, `pricing_model`, `category`,
    # `type`), from the latest status that carried it (`pricing_at`, the provider's time).
    pricing = models.JSONField(_("pricing"), default=dict, blank=True)
    pricing_at = models.DateTimeField(_("priced"), null=True, blank=True)

    # Work tracking. Inbound: handled by its turn. Outbound: handed to the provider.
    # `locked_until` is a lease: a worker claims the row by moving it into the future with a
    # conditional update; a retry parks it there until its next attempt; the sweeper takes
    # rows whose lease has run out.
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    handled_at = models.DateTimeField(_("handled"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)

    # Both empty on every customer message: indexed only where set (msg_sent_by_idx,
    # msg_bot_config_version_idx), so inbound inserts do not maintain them.
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("sent by"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )
    bot_config_version = models.ForeignKey(
        "conversations.BotConfigVersion", verbose_name=_("bot configuration version"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="messages",
        db_index=False,
    )
    ai_model = models.CharField(_("AI model"), max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(_("input tokens"), null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(_("cached tokens"), null=True, blank=True)
    output_tokens = models.PositiveIntegerField(_("output tokens"), null=True, blank=True)
    cost_usd = models.DecimalField(_("cost (USD)"), max_digits=12, decimal_places=6, null=True, blank=True)
    # A voice note's words, as transcribed (answered like a text); empty when not transcribed.
    transcript = models.TextField(_("transcript"), blank=True)

    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        # A constraint, not `unique=True`: the same unique index (deduplication, ON CONFLICT),
        # without the LIKE index Django adds for a unique CharField, which nothing queries
        # and every insert would maintain.
        constraints = [models.UniqueConstraint(fields=["wamid"], name="message_wamid_uniq")]
        indexes = [
            models.Index(fields=["conversation", "-id"], name="msg_thread_idx"),
            # Imported past chats read in time order (`selectors.thread_messages`); only they
            # are in it, so live inserts do not maintain it.
            models.Index(
                fields=["conversation", "-provider_timestamp", "-id"], name="msg_history_idx",
                condition=models.Q(origin="history"),
            ),
            models.Index(fields=["sent_by"], name="msg_sent_by_idx", condition=models.Q(sent_by__isnull=False)),
            models.Index(
                fields=["bot_config_version"], name="msg_bot_config_version_idx", condition=models.Q(bot_config_version__isnull=False)
            ),
            # The edits and deletions of a message, found by the message's wamid (few rows).
            models.Index(fields=["context_wamid"], name="msg_revision_idx", condition=models.Q(type__in=["edit", "revoke"])),
            models.Index(
                fields=["created_at"],
                name="msg_inbound_unhandled_idx",
                condition=models.Q(direction="in", handled_at__isnull=True),
            ),
            models.Index(
                fields=["created_at"],
                name="msg_outbound_pending_idx",
                condition=models.Q(direction="out", status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.get_type_display()}: {self.text[:40]}"

    @property
    def words(self) -> str:
        """What the customer said in it: a voice note's transcript, else its text (a media
        message's caption). The turn reads a customer's words here and only here; the same
        rule for a query is `WORDS`."""
        return self.transcript if self.type == MessageType.AUDIO else self.text

    @property
    def marketing_template(self) -> bool:
        """A marketing template: its category ("MARKETING", "UTILITY", "AUTHENTICATION", as
        Meta names them) comes with the message, in `payload["template"]["category"]`."""
        template = (self.payload or {}).get("template")
        category = template.get("category") if isinstance(template, dict) else None
        return self.type == MessageType.TEMPLATE and isinstance(category, str) and category.lower() == MARKETING

    @property
    def billable(self) -> bool | None:
        """Whether the provider charges for the message (None: it has not said)."""
        billable = self.pricing.get("billable")
        return billable if isinstance(billable, bool) else None

    @property
    def earlier_versions(self) -> list[tuple[str, datetime | None]]:
        """(text, when written) of each version before the current one, oldest first."""
        return [(v.get("text", ""), parse_datetime(v.get("at") or "")) for v in self.earlier_texts]


# `Message.words` in a query (the agent's memory reads many messages' words at once).
WORDS = models.Case(models.When(type=MessageType.AUDIO, then=models.F("transcript")), default=models.F("text"))


class MediaState(models.TextChoices):
    PENDING = "pending", _("Not fetched yet")
    STORED = "stored", _("Stored")
    EXPIRED = "expired", _("Expired at the provider")  # the provider no longer has it
    REFUSED = "refused", _("Refused")  # does not match its sha256, too large, a type not taken
    FAILED = "failed", _("Could not be fetched")  # gave up after MEDIA_FETCH_MAX_ATTEMPTS
    DELETED = "deleted", _("Deleted (retention)")


def media_path(instance: "MediaFile", filename: str) -> str:
    """Where a media file goes in the storage: by day and message, never by the customer's
    name or number (the path can end up in a storage provider's logs)."""
    day = timezone.now().strftime("%Y/%m/%d")
    return f"whatsapp/{day}/{instance.message_id}-{filename}"


class MediaFile(models.Model):
    """The bytes of a message's image, audio, video, document or sticker, kept in Django's
    default storage (never a public URL: the console serves them to logged-in staff). One per
    media message, either way: a customer's, fetched from the provider; staff's, uploaded
    to it (`provider_media_id`)."""

    message = models.OneToOneField(
        Message, verbose_name=_("message"), on_delete=models.CASCADE, primary_key=True, related_name="media_file",
    )
    state = models.CharField(_("state"), max_length=8, choices=MediaState.choices, default=MediaState.PENDING)
    file = models.FileField(_("file"), upload_to=media_path, max_length=255, blank=True)
    mime_type = models.CharField(_("type"), max_length=128, blank=True)
    size = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)  # hex, of the stored bytes
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    error = models.CharField(_("error"), max_length=255, blank=True)  # why it is expired, refused or failed
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)  # a fetch's lease, as on Message
    provider_media_id = models.CharField(_("provider media id"), max_length=128, blank=True)  # outbound: the id given the upload
    stored_at = models.DateTimeField(_("stored"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)  # removed by retention (MEDIA_RETENTION_DAYS)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("media file")
        verbose_name_plural = _("media files")
        indexes = [
            # Retention's oldest stored files.
            models.Index(fields=["stored_at"], name="media_stored_idx", condition=models.Q(state="stored")),
            # The sweeper's media still to fetch.
            models.Index(fields=["created_at"], name="media_pending_idx", condition=models.Q(state="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.get_state_display()}: {self.filename or self.mime_type or self.message_id}"


# How long a claimed message is a worker's before another may take it over (LEASE_SECONDS).
# The worker keeps the leases of its work in flight from running out (`conversations.runtime`),
# so this only bounds how long a killed worker's messages wait for the sweeper.
LEASE = timezone.timedelta(seconds=settings.LEASE_SECONDS)


def lease_free(now) -> models.Q:
    """Rows no worker holds: never claimed, or their lease (`locked_until`) has run out."""
    return models.Q(locked_until__isnull=True) | models.Q(locked_until__lte=now)


class StatusUpdate(models.Model):
    """A delivery status as Meta reported it. Kept for history, and so a status that
    arrives before its message's wamid is stored can still be applied afterwards."""

    wamid = models.CharField(_("WhatsApp message id"), max_length=255)
    status = models.CharField(_("status"), max_length=10, choices=MessageStatus.choices)
    timestamp = models.DateTimeField(_("time"))
    recipient_id = models.CharField(_("recipient"), max_length=160, blank=True)  # a phone number or a BSUID
    errors = models.JSONField(_("errors"), default=list, blank=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    pricing = models.JSONField(_("pricing"), default=dict, blank=True)  # `StatusEvent.pricing`
    applied = models.BooleanField(_("applied"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("status update")
        verbose_name_plural = _("status updates")
        indexes = [
            models.Index(fields=["wamid"], name="status_wamid_idx"),  # a message's history (no LIKE index)
            models.Index(fields=["wamid"], name="status_unapplied_idx", condition=models.Q(applied=False)),
            # The sweeper's recent unapplied statuses (see `statuses_sweep`).
            models.Index(fields=["created_at"], name="status_unapplied_recent_idx", condition=models.Q(applied=False)),
        ]


class BotConfig(models.Model):
    """How the AI agent behaves on a channel (or on every channel, when `channel` is empty)."""

    name = models.CharField(_("name"), max_length=120)
    channel = models.OneToOneField(
        Channel, verbose_name=_("channel"), null=True, blank=True, on_delete=models.CASCADE, related_name="bot_config",
    )
    model = models.CharField(_("model"), max_length=64, blank=True, help_text=_("Empty: OPENAI_MODEL."))
    instructions = models.TextField(_("instructions"), blank=True)
    vector_store_ids = models.JSONField(_("vector store ids (file search)"), default=list, blank=True)
    fields_to_collect = models.JSONField(_("fields to collect"), default=list, blank=True)
    # [{"key": "vat_number", "label": "Partita IVA", "description": "..."}]
    extra_fields = models.JSONField(_("extra fields"), default=list, blank=True)
    order_number_pattern = models.CharField(_("order number pattern (regex)"), max_length=255, blank=True)
    temperature = models.FloatField(_("temperature"), null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(_("max output tokens"), null=True, blank=True)
    # The bot's fixed messages by kind and language: {"handoff": {"it": "…", "en": "…"}, "holding": …, "away": …,
    # "media": …}; a kind or language without a text here gets the built-in one (`agent.prompts.fixed_message`).
    fixed_messages = models.JSONField(_("fixed messages"), default=dict, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("updated by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("bot configuration")
        verbose_name_plural = _("bot configurations")
        constraints = [
            # One configuration per channel (the one-to-one) and one default (no channel): the
            # default is created on first need, possibly by two workers at once.
            models.UniqueConstraint(Coalesce("channel", 0), name="one_bot_config_per_channel_or_default"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class BotConfigVersion(models.Model):
    """A snapshot of a BotConfig as saved; every save adds one."""

    config = models.ForeignKey(BotConfig, verbose_name=_("configuration"), on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField(_("version"))
    data = models.JSONField(_("data"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("created by"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("bot configuration version")
        verbose_name_plural = _("bot configuration versions")
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["config", "version"], name="unique_bot_config_version")]

    def __str__(self) -> str:
        return f"{self.config.name} v{self.version}"


class QuickReply(models.Model):
    """A canned answer staff insert by typing `/shortcut` in the composer."""

    shortcut = models.SlugField(_("shortcut"), max_length=40, unique=True)
    title = models.CharField(_("title"), max_length=120)
    text = models.TextField(_("text"))
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("quick reply")
        verbose_name_plural = _("quick replies")
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class ConversationNote(models.Model):
    """An internal note: visible to staff, never sent to the customer."""

    conversation = models.ForeignKey(Conversation, verbose_name=_("conversation"), on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), null=True, on_delete=models.SET_NULL, related_name="+",
    )
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="note_thread_idx")]


class AlertKind(models.TextChoices):
    MODEL_REFUSED = "model_refused", _("OpenAI refuses the model")
    MODEL_SHUTDOWN = "model_shutdown", _("The model shuts down soon")


class Alert(models.Model):
    """Something only an admin can fix, shown in admin until resolved. One row per kind and
    subject (a model): raised again, it counts up and opens again."""

    kind = models.CharField(_("kind"), max_length=32, choices=AlertKind.choices)
    subject = models.CharField(_("subject"), max_length=128)
    text = models.TextField(_("text"))
    count = models.PositiveIntegerField(_("times"), default=1)
    first_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_at = models.DateTimeField(_("last seen"), default=timezone.now)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        constraints = [models.UniqueConstraint(fields=["kind", "subject"], name="alert_kind_subject_uniq")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class TemplateStatus(models.TextChoices):
    """A template's status as Meta names it (`message_template_status_update`'s events)."""

    APPROVED = "APPROVED", _("Approved")
    PENDING = "PENDING", _("In review")
    REJECTED = "REJECTED", _("Rejected")
    PAUSED = "PAUSED", _("Paused")
    DISABLED = "DISABLED", _("Disabled")
    IN_APPEAL = "IN_APPEAL", _("In appeal")
    ARCHIVED = "ARCHIVED", _("Archived")
    PENDING_DELETION = "PENDING_DELETION", _("Being deleted")
    DELETED = "DELETED", _("Deleted")


class TemplateCategory(models.TextChoices):
    MARKETING = "MARKETING", _("Marketing")
    UTILITY = "UTILITY", _("Utility")
    AUTHENTICATION = "AUTHENTICATION", _("Authentication")


class MessageTemplate(models.Model):
    """A message template of a WhatsApp Business Account, as Meta last said: listed by the
    sync (`GET /{waba-id}/message_templates`), changed at once by the template webhooks. The
    only message a business may send once the 24-hour window has closed.

    Each of status, quality and category keeps the time of what set it (`*_at`: Meta's
    event time, or when a sync read the list), so an update older than what is known is
    never applied over it, whatever order the webhooks arrive in (`sql.templates`). A row
    a webhook created before any sync has no components yet (`synced_at` empty): it is
    kept, and shown once a sync brings the rest."""

    business_account_id = models.CharField(_("business account id"), max_length=64)
    template_id = models.CharField(_("Meta's template id"), max_length=64, blank=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=16)
    category = models.CharField(_("category"), max_length=32, choices=TemplateCategory.choices, blank=True)
    category_at = models.DateTimeField(_("category changed"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=24, choices=TemplateStatus.choices, blank=True)
    reason = models.TextField(_("reason"), blank=True)  # why rejected, paused or disabled (Meta's words)
    status_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    quality_score = models.CharField(_("quality"), max_length=16, blank=True)  # GREEN, YELLOW, RED, UNKNOWN
    quality_at = models.DateTimeField(_("quality changed"), null=True, blank=True)
    components = models.JSONField(_("components"), default=list, blank=True)  # as Meta gives them
    parameter_format = models.CharField(_("parameter format"), max_length=16, blank=True)  # POSITIONAL, NAMED
    synced_at = models.DateTimeField(_("last synced"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("no longer listed"), null=True, blank=True)  # Meta's list no longer has it
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(fields=["business_account_id", "name", "language"], name="template_account_name_language_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def marketing(self) -> bool:
        return self.category.upper() == TemplateCategory.MARKETING

    @property
    def sendable(self) -> bool:
        return self.status == TemplateStatus.APPROVED and self.deleted_at is None and self.synced_at is not None
