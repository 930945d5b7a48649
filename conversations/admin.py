"""Django admin for admins: channels (secrets write-only), conversations, messages, notes,
quick replies, delivery statuses. Bot configurations live in `botconfig_admin.py`.

Rows the pipeline writes (conversations, messages, statuses) are read-only here: editing them
by hand would bypass the services that keep the console's denormalised state consistent.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserCreationForm
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils import timezone
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from conversations.roles import (
    ADMINS_GROUP,
    AGENTS_GROUP,
    is_admin,
    staff_member_create,
)
from profiles.admin import CappedCountPaginator
from profiles.models import ClientProfile
from profiles.selectors import profile_search_condition

from . import botconfig_admin  # noqa: F401  (registers BotConfig)
from . import templates_admin  # noqa: F401  (registers MessageTemplate)
from .models import (
    Alert,
    Channel,
    ClosedDay,
    Conversation,
    ConversationNote,
    MediaFile,
    MediaState,
    Message,
    OpeningHours,
    QuickReply,
    StatusUpdate,
    pricing_category_label,
)
from .services.desk import staff_availability_set
from .texts import stored_text_translate

# Only admins reach Django admin; agents work in the console.
admin.site.has_permission = lambda request: is_admin(request.user)
admin.site.site_header = "whatsbot"
admin.site.site_title = _("whatsbot admin")
admin.site.site_url = "/console/"

SECRET_FIELDS = ("access_token", "app_secret", "verify_token")


class BigTableAdminMixin:
    """For tables that grow with traffic (messages, statuses, webhook events): a capped count,
    and date filters instead of `date_hierarchy`, whose month list is a DISTINCT over every row
    (measured: 2.9 s on 2,000,000 messages)."""

    paginator = CappedCountPaginator
    show_full_result_count = False


class ReadOnlyAdminMixin:
    """View (and, where allowed, delete) only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Channels -----------------------------------------------------------------------------


class SecretInput(forms.PasswordInput):
    """Never renders the stored value (PasswordInput's `render_value=False`), even after a
    failed submit; the placeholder only says whether one is stored."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", "size": 60, **(attrs or {})}, render_value=False)


class ChannelForm(forms.ModelForm):
    access_token = forms.CharField(label=_("access token"), required=False, widget=SecretInput, strip=True)
    app_secret = forms.CharField(label=_("app secret"), required=False, widget=SecretInput, strip=True)
    verify_token = forms.CharField(label=_("verify token"), required=False, widget=SecretInput, strip=True)
    clear_secrets = forms.MultipleChoiceField(
        label=_("clear"),
        required=False,
        choices=[(name, Channel._meta.get_field(name).verbose_name) for name in SECRET_FIELDS],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick to erase a stored secret (leaving a secret field blank keeps the stored value)."),
    )

    class Meta:
        model = Channel
        fields = [
            "name", "provider", "phone_number_id", "display_phone_number", "business_account_id",
            *SECRET_FIELDS, "api_version", "is_active",
        ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            stored = bool(self.instance.pk and getattr(self.instance, name))
            # The form field starts empty; only the placeholder tells whether a value is stored.
            self.initial[name] = ""
            self.fields[name].widget.attrs["placeholder"] = (
                _("stored — leave blank to keep it") if stored else _("not set")
            )

    def clean(self):
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            if name in (cleaned.get("clear_secrets") or []):
                cleaned[name] = ""
            elif not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0
    verbose_name_plural = _("business hours (none: always open)")


class ClosedDayInline(admin.TabularInline):
    model = ClosedDay
    extra = 0


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    inlines = [OpeningHoursInline, ClosedDayInline]
    list_display = ["name", "provider", "phone_number_id", "display_phone_number", "secrets_set", "is_active", "from_environment", "updated_at"]
    list_filter = ["provider", "is_active", "from_environment"]
    search_fields = ["name", "phone_number_id", "display_phone_number", "business_account_id"]
    readonly_fields = ["from_environment", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "provider", "is_active", "phone_number_id", "display_phone_number", "business_account_id", "api_version"]}),
        (
            _("Secrets (write-only)"),
            {
                "fields": [*SECRET_FIELDS, "clear_secrets"],
                "description": _("Stored values are never shown. Type a new value to replace one; leave blank to keep it."),
            },
        ),
        (
            _("Business hours"),
            {
                "fields": ["time_zone"],
                "description": _(
                    "Outside the hours below the bot still answers; a hand-off waits in the queue and the customer is told "
                    "when a person is back."
                ),
            },
        ),
        (_("Origin"), {"fields": ["from_environment", "created_at", "updated_at"]}),
    ]

    @admin.display(description=_("secrets"))
    def secrets_set(self, obj: Channel) -> str:
        # Says which secrets are present, never what they are.
        return ", ".join(
            f"{Channel._meta.get_field(name).verbose_name} {'✓' if getattr(obj, name) else '✗'}" for name in SECRET_FIELDS
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj and obj.from_environment:
            # Overwritten from WHATSAPP_* at every start: editing here would silently revert.
            fields += ["phone_number_id", "provider"]
        return fields


# --- Conversations ------------------------------------------------------------------------

INLINE_MESSAGE_LIMIT = 100


class RecentMessagesFormSet(BaseInlineFormSet):
    """Only the latest messages: a thread can hold thousands."""

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset().order_by("-id")[:INLINE_MESSAGE_LIMIT]
        return self._queryset


class MessageInline(admin.TabularInline):
    model = Message
    formset = RecentMessagesFormSet
    fields = ["created_at", "direction", "author", "type", "text", "status", "error", "sent_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("latest %(count)d messages") % {"count": INLINE_MESSAGE_LIMIT}

    @admin.display(description=_("error"))
    def error(self, obj: Message) -> str:
        return stored_text_translate(obj.error_title)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("sent_by")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NoteInline(admin.TabularInline):
    model = ConversationNote
    fields = ["created_at", "author", "text"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "contact", "handle", "channel", "owner", "status", "assigned_to", "unread_count", "last_message_at", "preview",
    ]  # fmt: skip
    list_select_related = ["profile", "channel", "assigned_to"]
    list_filter = ["owner", "status", "channel", ("assigned_to", admin.RelatedOnlyFieldListFilter)]
    search_fields = [
        "profile__wa_id", "profile__user_id", "profile__username", "profile__profile_name", "profile__first_name",
        "profile__last_name", "profile__email", "profile__company",
    ]  # fmt: skip
    date_hierarchy = "last_message_at"
    paginator = CappedCountPaginator
    ordering = ["-last_message_at", "-id"]
    inlines = [NoteInline, MessageInline]
    readonly_fields = ["profile_link", "all_messages", "handoff_reason_text"]
    fieldsets = [
        (None, {"fields": ["profile_link", "channel", "owner", "status", "assigned_to", "handoff_reason_text", "handoff_at"]}),
        (_("Thread"), {"fields": ["last_inbound_at", "last_message_at", "last_message_preview", "unread_count", "revision", "changed_at", "all_messages"]}),
        (_("AI state"), {"fields": ["openai_conversation_id", "openai_conversation_started_at", "summary"], "classes": ["collapse"]}),
    ]
    show_full_result_count = False

    @admin.display(description=_("hand-off reason"))
    def handoff_reason_text(self, obj: Conversation) -> str:
        return stored_text_translate(obj.handoff_reason)

    @admin.display(description=_("contact"), ordering="profile__first_name")
    def contact(self, obj: Conversation) -> str:
        return obj.profile.display_name

    @admin.display(description=_("WhatsApp id"), ordering="profile__wa_id")
    def handle(self, obj: Conversation) -> str:
        return obj.profile.handle

    @admin.display(description=_("last message"))
    def preview(self, obj: Conversation) -> str:
        return Truncator(obj.last_message_preview).chars(60)

    @admin.display(description=_("client profile"))
    def profile_link(self, obj: Conversation) -> str:
        url = reverse("admin:profiles_clientprofile_change", args=[obj.profile_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.profile.display_name, obj.profile.handle)

    @admin.display(description=_("all messages"))
    def all_messages(self, obj: Conversation) -> str:
        url = reverse("admin:conversations_message_changelist") + f"?conversation__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Every message of this conversation"))

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).select_related("profile", "channel", "assigned_to")

    def get_search_results(self, request, queryset, search_term):
        # The console's profile search (one trigram index over every profile field) instead of
        # admin's OR of six LIKEs, which scans all profiles (measured 1.2 s at 100,000).
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        profiles = ClientProfile.objects.filter(profile_search_condition(term)).values("pk")
        return queryset.filter(profile__in=profiles), False

    def has_delete_permission(self, request, obj=None):
        # Deleting a thread (e.g. a customer's erasure request) stays possible.
        return super().has_delete_permission(request, obj)


# --- Messages -----------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "created_at", "contact", "direction", "author", "type", "short_text", "status", "billing", "error_code"]
    list_select_related = ["conversation__profile"]
    list_filter = [("created_at", admin.DateFieldListFilter), "direction", "author", "type", "status", "conversation__channel"]
    search_fields = ["=wamid", "text", "=conversation__profile__wa_id", "=conversation__profile__user_id"]
    ordering = ["-id"]
    raw_id_fields = ["conversation", "sent_by", "bot_config_version"]
    readonly_fields = ["conversation_link", "cost", "media_stored", "error_title_text", "error_detail_text"]
    fieldsets = [
        (None, {"fields": ["conversation_link", "direction", "author", "type", "text", "transcript", "media", "media_stored", "payload", "context_wamid", "referral"]}),
        (_("Delivery"), {"fields": ["wamid", "provider_timestamp", "status", "sent_at", "delivered_at", "read_at", "played_at", "failed_at", "error_code", "error_title_text", "error_detail_text", "pricing", "pricing_at"]}),
        (_("Processing"), {"fields": ["attempts", "locked_until", "handled_at", "sent_by", "created_at"]}),
        (_("AI"), {"fields": ["bot_config_version", "ai_model", "input_tokens", "cached_tokens", "output_tokens", "cost"], "classes": ["collapse"]}),
    ]

    @admin.display(description=_("contact"))
    def contact(self, obj: Message) -> str:
        return obj.conversation.profile.display_name

    @admin.display(description=_("text"))
    def short_text(self, obj: Message) -> str:
        return Truncator(obj.text).chars(80)

    @admin.display(description=_("error"))
    def error_title_text(self, obj: Message) -> str:
        return stored_text_translate(obj.error_title)

    @admin.display(description=_("error detail"))
    def error_detail_text(self, obj: Message) -> str:
        return stored_text_translate(obj.error_detail)

    @admin.display(description=_("WhatsApp charge"))
    def billing(self, obj: Message) -> str:
        """Billable or free, and the category WhatsApp priced it under ("" until it says)."""
        if obj.billable is None:
            return ""
        category = pricing_category_label(obj.pricing.get("category", ""))
        return format_html("{} · {}", _("billable") if obj.billable else _("free"), category)

    @admin.display(description=_("cost (USD)"))
    def cost(self, obj: Message) -> str:
        """Tokens counted at a model OPENAI_PRICES has no price for: unknown, not free."""
        if obj.cost_usd is not None:
            return str(obj.cost_usd)
        return _("unknown") if obj.input_tokens is not None else "-"

    @admin.display(description=_("stored file"))
    def media_stored(self, obj: Message) -> str:
        """Where the message's file stands (`MediaFile`); a stored one opens through the
        console's staff-only view, never a public URL."""
        media = MediaFile.objects.filter(message_id=obj.pk).first()
        if media is None:
            return "-"
        if media.state != MediaState.STORED:
            error = stored_text_translate(media.error)
            return format_html("{}{}", media.get_state_display(), f": {error}" if error else "")
        url = reverse("console:media", args=[obj.conversation_id, obj.pk])
        size = filesizeformat(media.size or 0)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a> · {} · {}', url, media.filename or _("open"), media.mime_type, size)

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: Message) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation.profile.display_name)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).select_related("conversation__profile")

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StatusUpdate)
class StatusUpdateAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "timestamp", "wamid", "status", "recipient_id", "applied", "error"]
    list_filter = [("timestamp", admin.DateFieldListFilter), "status", "applied"]
    search_fields = ["=wamid", "=recipient_id"]
    ordering = ["-id"]

    @admin.display(description=_("error"))
    def error(self, obj: StatusUpdate) -> str:
        first = (obj.errors or [{}])[0] if isinstance(obj.errors, list) else {}
        return " ".join(str(v) for v in (first.get("code"), first.get("title")) if v)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What only an admin can fix; raised by the turn (a refused model) and the hourly check
    of the models' shutdown dates, which also resolves what no longer applies."""

    list_display = ["last_at", "kind", "subject", "text", "count", "first_at", "resolved_at"]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    ordering = [F("resolved_at").desc(nulls_first=True), "-last_at"]  # the open ones first
    actions = ["resolve"]

    @admin.action(description=_("Mark the selected alerts resolved"))
    def resolve(self, request, queryset: QuerySet) -> None:
        queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())

    def has_delete_permission(self, request, obj=None):
        return False


# --- Staff tools ----------------------------------------------------------------------------


@admin.register(QuickReply)
class QuickReplyAdmin(admin.ModelAdmin):
    list_display = ["shortcut", "title", "short_text", "is_active"]
    list_editable = ["is_active"]
    list_filter = ["is_active"]
    search_fields = ["shortcut", "title", "text"]
    prepopulated_fields = {"shortcut": ["title"]}

    @admin.display(description=_("text"))
    def short_text(self, obj: QuickReply) -> str:
        return Truncator(obj.text).chars(80)


@admin.register(ConversationNote)
class ConversationNoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "contact", "author", "short_text"]
    list_select_related = ["conversation__profile", "author"]
    list_filter = [("author", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["text", "=conversation__profile__wa_id", "=conversation__profile__user_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    raw_id_fields = ["conversation", "author"]

    @admin.display(description=_("contact"))
    def contact(self, obj: ConversationNote) -> str:
        return obj.conversation.profile.display_name

    @admin.display(description=_("text"))
    def short_text(self, obj: ConversationNote) -> str:
        return Truncator(obj.text).chars(80)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).select_related("conversation__profile", "author")


# --- Staff and roles ------------------------------------------------------------------------

User = get_user_model()


class StaffCreationForm(UserCreationForm):
    """Adding a user here adds a console user: staff, with a role."""

    role = forms.ChoiceField(
        label=_("role"),
        choices=[(AGENTS_GROUP, _("Agent: console only")), (ADMINS_GROUP, _("Admin: console and Django admin"))],
        initial=AGENTS_GROUP,
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "first_name", "last_name", "email")


@admin.display(description=_("role"))
def _role(user) -> str:
    if not user.is_staff:
        return _("no console access")
    if user.is_superuser:
        return _("Admin (superuser)")
    names = {g.name for g in user.groups.all()}  # prefetched
    if ADMINS_GROUP in names:
        return _("Admin")
    return _("Agent")


admin.site.unregister(User)


@admin.register(User)
class StaffAdmin(UserAdmin):
    add_form = StaffCreationForm
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["username", "first_name", "last_name", "email", "role", "password1", "password2"]}),
    ]
    list_display = ["username", "first_name", "last_name", "email", _role, "available", "is_active", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups"]
    actions = ["set_available", "set_away"]

    def get_queryset(self, request) -> QuerySet:
        available = Coalesce("console_preference__available", False)
        return super().get_queryset(request).prefetch_related("groups").annotate(available=available)

    @admin.display(description=_("available"), boolean=True, ordering="available")
    def available(self, obj) -> bool:
        return obj.available

    # Through the service: going away hands the member's open conversations on.
    @admin.action(description=_("Set available (hand-offs come to them)"))
    def set_available(self, request, queryset) -> None:
        for user in queryset:
            staff_availability_set(user=user, available=True)

    @admin.action(description=_("Set away (their open conversations are handed on)"))
    def set_away(self, request, queryset) -> None:
        for user in queryset:
            staff_availability_set(user=user, available=False)

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        user = staff_member_create(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data.get("email") or "",
            first_name=form.cleaned_data.get("first_name") or "",
            last_name=form.cleaned_data.get("last_name") or "",
            role=form.cleaned_data["role"],
        )
        # Admin goes on with `obj` (redirect, history entry): make it the created row.
        obj.pk = user.pk
        obj._state.adding = False
