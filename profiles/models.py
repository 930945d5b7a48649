from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The fields the agent can collect, in the order it asks for them. Admins can add more
# per bot config (stored in ClientProfile.extra).
STANDARD_FIELDS = ("first_name", "last_name", "company", "email", "order_number")


class FieldSource(models.TextChoices):
    AI = "ai", _("AI")
    STAFF = "staff", _("Staff")
    CUSTOMER = "customer", _("Customer")  # e.g. the WhatsApp profile name
    SYSTEM = "system", _("System")


# A value's `origin` in provenance (source SYSTEM): the name the business saved for the
# customer in the WhatsApp Business app's address book (coexistence).
BUSINESS_APP = "business_app"


class Confidence(models.TextChoices):
    """How surely an extracted value is what the customer meant. The AI's value is replaced
    only by one at least as sure, and a guess only fills an empty field
    (`profiles.services.profile_field_set`)."""

    # Said outright: "mi chiamo …", "my name is …", an email or order number pattern, the
    # model's structured extraction.
    STATED = "stated", _("stated")
    # Read from a weak pattern ("sono Giulia", "I am John"): right often, not always.
    GUESSED = "guessed", _("guessed")


# The category of WhatsApp's marketing messages (marketing templates) in a customer's preferences.
MARKETING_MESSAGES = "marketing_messages"


class MarketingChoice(models.TextChoices):
    """What a customer last said about marketing messages (WhatsApp's "Offers and
    announcements" setting). Meta names no other value today; one it adds is kept as given."""

    STOP = "stop", _("Stopped")
    RESUME = "resume", _("Resumed")


@dataclass(frozen=True)
class ExtractedValue:
    """One value read out of a customer's text, with how sure the reader is of it. A plain
    string given to `profile_update_from_extraction` counts as stated."""

    value: str
    confidence: Confidence = Confidence.STATED


class ClientProfile(models.Model):
    """A customer: an identity set (phone number, business-scoped user id, parent BSUID,
    username) pointing to one profile. A message finds its customer by any identity it
    carries; one learned later joins the same profile (`conversations.sql.ingest`)."""

    # The identity the customer was first known by (its BSUID, or its phone number when Meta
    # gave none): never changes, so concurrent deliveries for one new customer meet on it.
    key = models.CharField(_("key"), max_length=160, editable=False)  # unique: profile_key_uniq
    # Meta's wa_id: the phone number, when Meta shares it. Unique where known.
    wa_id = models.CharField(_("phone number"), max_length=32, blank=True)
    # The business-scoped user id (BSUID), e.g. "IT.13491208655302741918". Unique where known.
    user_id = models.CharField(_("WhatsApp user id (BSUID)"), max_length=160, blank=True)
    parent_user_id = models.CharField(_("parent user id"), max_length=160, blank=True)
    username = models.CharField(_("WhatsApp username"), max_length=100, blank=True)
    profile_name = models.CharField(_("WhatsApp profile name"), max_length=255, blank=True)
    first_name = models.CharField(_("first name"), max_length=120, blank=True)
    last_name = models.CharField(_("last name"), max_length=120, blank=True)
    company = models.CharField(_("company"), max_length=255, blank=True)
    email = models.EmailField(_("email"), max_length=254, blank=True)
    # Every order number the customer has given, most recent last.
    order_numbers = models.JSONField(_("order numbers"), default=list, blank=True)
    # Values of admin-defined fields, by field key.
    extra = models.JSONField(_("other fields"), default=dict, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    # Where each stored value came from: {field: {"source": "ai"|"staff"|..., "message_id": int|None,
    # "user_id": int|None, "user": str, "at": iso-datetime}}, and for the AI's values
    # "confidence": "stated"|"guessed" (entries written before it existed have none), and for a
    # SYSTEM value what wrote it: "origin": BUSINESS_APP.
    provenance = models.JSONField(_("provenance"), default=dict, blank=True)
    first_contact_at = models.DateTimeField(_("first contact"), null=True, blank=True)
    last_contact_at = models.DateTimeField(_("last contact"), null=True, blank=True)
    # The customer's latest choice about marketing messages and when they made it (Meta's
    # time, so a late delivery of an older choice changes nothing); empty: never said.
    # Every choice is kept in `preference_changes`.
    marketing_messages = models.CharField(_("marketing messages"), max_length=16, blank=True, choices=MarketingChoice.choices)
    marketing_messages_at = models.DateTimeField(_("marketing messages chosen at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("client profile")
        verbose_name_plural = _("client profiles")
        # Not `unique=True`: the same unique index without Django's LIKE index beside it.
        constraints = [
            models.UniqueConstraint(fields=["key"], name="profile_key_uniq"),
            models.UniqueConstraint(fields=["wa_id"], condition=~models.Q(wa_id=""), name="profile_wa_id_uniq"),
            models.UniqueConstraint(fields=["user_id"], condition=~models.Q(user_id=""), name="profile_user_id_uniq"),
        ]
        indexes = [
            models.Index(fields=["username"], name="profile_username_idx", condition=~models.Q(username="")),
            models.Index(fields=["email"], name="profile_email_idx"),
            models.Index(fields=["last_contact_at"], name="profile_last_contact_idx"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs) -> None:
        if not self.key:
            self.key = self.key_for(user_id=self.user_id, wa_id=self.wa_id)
        super().save(*args, **kwargs)

    @staticmethod
    def key_for(*, user_id: str, wa_id: str) -> str:
        """The key of a new profile: its BSUID, or its phone number when Meta gave none."""
        return user_id or wa_id

    @property
    def display_name(self) -> str:
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.profile_name or self.handle

    @property
    def handle(self) -> str:
        """How the customer is reached, for staff: the number, else the @username, else the BSUID."""
        if self.wa_id:
            return f"+{self.wa_id}"
        return self.at_username or self.user_id

    @property
    def at_username(self) -> str:
        """The WhatsApp username as the app shows it ("@name"), or ''."""
        if not self.username:
            return ""
        return self.username if self.username.startswith("@") else f"@{self.username}"

    @property
    def marketing_stopped(self) -> bool:
        """The customer stopped marketing messages: no marketing template may reach them."""
        return self.marketing_messages == MarketingChoice.STOP

    @property
    def order_number(self) -> str:
        return self.order_numbers[-1] if self.order_numbers else ""

    def value_of(self, field: str) -> str:
        if field in STANDARD_FIELDS:
            return getattr(self, field) or ""
        return str(self.extra.get(field, "") or "")

    def source_of(self, field: str) -> str | None:
        entry = self.provenance.get(field)
        return entry.get("source") if entry else None


class ProfileFieldChange(models.Model):
    """Every change to a collected field, oldest first: the audit trail behind `provenance`."""

    profile = models.ForeignKey(ClientProfile, verbose_name=_("customer"), on_delete=models.CASCADE, related_name="field_changes")
    field = models.CharField(_("field"), max_length=64)
    old_value = models.TextField(_("old value"), blank=True)
    new_value = models.TextField(_("new value"), blank=True)
    source = models.CharField(_("source"), max_length=16, choices=FieldSource.choices)
    message = models.ForeignKey(
        "conversations.Message", verbose_name=_("message"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("field change")
        verbose_name_plural = _("field changes")
        indexes = [models.Index(fields=["profile", "field", "created_at"], name="profile_change_idx")]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value!r} → {self.new_value!r} ({self.source})"


class ProfilePreferenceChange(models.Model):
    """A customer's choice about a category of messages, as WhatsApp reported it: the history
    behind `ClientProfile.marketing_messages`. A redelivered choice is stored once."""

    profile = models.ForeignKey(
        ClientProfile, verbose_name=_("customer"), on_delete=models.CASCADE, related_name="preference_changes",
    )
    category = models.CharField(_("category"), max_length=64)
    value = models.CharField(_("choice"), max_length=16, choices=MarketingChoice.choices)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    at = models.DateTimeField(_("chosen at"))
    created_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("preference change")
        verbose_name_plural = _("preference changes")
        constraints = [
            models.UniqueConstraint(fields=["profile", "category", "at", "value"], name="profile_preference_once"),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.value} ({self.at:%Y-%m-%d %H:%M})"


class StaffPreference(models.Model):
    """A staff member's console settings (the interface language; Italian by default) and
    whether they take hand-offs now (`available`: away until they say otherwise, so nobody
    who never opened the console is handed customers)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="console_preference",
    )
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="it")
    available = models.BooleanField(_("available"), default=False, help_text=_("Hand-offs are assigned to available staff."))
    # Told when a conversation needs them: a desktop notification (asked of the browser when
    # turned on), a sound.
    notify = models.BooleanField(_("desktop notifications"), default=False)
    notify_sound = models.BooleanField(_("notification sound"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("staff preference")
        verbose_name_plural = _("staff preferences")

    def __str__(self) -> str:
        return f"{self.user} ({self.language})"
