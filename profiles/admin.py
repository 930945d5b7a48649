"""Client profiles in admin. Edits go through `profile_field_set`, so an admin's change is
validated, recorded in the audit trail and marked as a staff value the AI will not overwrite."""

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from .models import (
    STANDARD_FIELDS,
    ClientProfile,
    Confidence,
    FieldSource,
    ProfileFieldChange,
    ProfilePreferenceChange,
)
from .selectors import profile_search_condition
from .services import FieldValueError, field_value_clean, profile_field_set

# Fields an admin may edit here; the order numbers are appended to, never replaced.
EDITABLE_FIELDS = ("first_name", "last_name", "company", "email")


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: `COUNT(*)` over millions of messages or webhook events costs
    seconds on every list page, and nobody pages past the first thousands in admin."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()


class ProfileFieldChangeInline(admin.TabularInline):
    model = ProfileFieldChange
    fields = ["created_at", "field", "old_value", "new_value", "source", "by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at"]
    verbose_name_plural = _("history of collected fields")

    @admin.display(description=_("by"))
    def by(self, obj: ProfileFieldChange) -> str:
        if obj.user_id:
            return obj.user.get_username()
        if obj.message_id:
            url = reverse("admin:conversations_message_change", args=[obj.message_id])
            return format_html('<a href="{}">{} #{}</a>', url, _("message"), obj.message_id)
        return "—"

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ProfilePreferenceChangeInline(admin.TabularInline):
    """What the customer chose about marketing messages, newest first, as WhatsApp reported it."""

    model = ProfilePreferenceChange
    fields = ["at", "category", "value", "detail", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-at", "-id"]
    verbose_name_plural = _("history of marketing choices")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ClientProfileForm(forms.ModelForm):
    class Meta:
        model = ClientProfile
        fields = list(EDITABLE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        for name in EDITABLE_FIELDS:
            if name in self.changed_data:
                try:
                    cleaned[name] = field_value_clean(field=name, value=cleaned.get(name) or "")
                except FieldValueError as exc:
                    self.add_error(name, str(exc))
        return cleaned


class CompletenessFilter(admin.SimpleListFilter):
    title = _("details")
    parameter_name = "details"

    def lookups(self, request, model_admin):
        return [("complete", _("name, company and email known")), ("missing", _("something missing"))]

    def queryset(self, request, queryset):
        if self.value() == "complete":
            return queryset.exclude(first_name="").exclude(company="").exclude(email="")
        if self.value() == "missing":
            return queryset.filter(Q(first_name="") | Q(company="") | Q(email=""))
        return queryset


@admin.register(ClientProfile)
class ClientProfileAdmin(admin.ModelAdmin):
    form = ClientProfileForm
    list_display = ["display_name", "handle", "profile_name", "company", "email", "latest_order", "last_contact_at"]
    list_filter = [CompletenessFilter, "marketing_messages", "language"]
    search_fields = ["=wa_id", "=user_id", "username", "profile_name", "first_name", "last_name", "company", "email"]
    date_hierarchy = "last_contact_at"
    paginator = CappedCountPaginator
    ordering = ["-last_contact_at", "-id"]
    show_full_result_count = False
    inlines = [ProfileFieldChangeInline, ProfilePreferenceChangeInline]
    readonly_fields = [
        "wa_id", "user_id", "parent_user_id", "username", "profile_name", "order_numbers", "extra", "language", "where_from",
        "marketing_messages", "marketing_messages_at",
        "first_contact_at", "last_contact_at", "created_at", "updated_at",
    ]  # fmt: skip
    fieldsets = [
        (None, {"fields": ["wa_id", "username", "user_id", "parent_user_id", "profile_name"]}),
        (_("Collected details"), {"fields": [*EDITABLE_FIELDS, "order_numbers", "extra", "language"],
                                  "description": _("A value changed here counts as a staff edit: the AI will neither ask for it nor overwrite it.")}),
        (_("Where each value came from"), {"fields": ["where_from"]}),
        (_("Marketing messages"), {"fields": ["marketing_messages", "marketing_messages_at"],
                                   "description": _("The customer's latest choice in WhatsApp: a customer who stopped never receives a marketing template.")}),
        (_("Contact"), {"fields": ["first_contact_at", "last_contact_at", "created_at", "updated_at"]}),
    ]  # fmt: skip

    @admin.display(description=_("name"), ordering="first_name")
    def display_name(self, obj: ClientProfile) -> str:
        return obj.display_name

    @admin.display(description=_("WhatsApp id"), ordering="wa_id")
    def handle(self, obj: ClientProfile) -> str:
        return obj.handle

    @admin.display(description=_("order number"))
    def latest_order(self, obj: ClientProfile) -> str:
        return obj.order_number

    @admin.display(description=_("provenance"))
    def where_from(self, obj: ClientProfile) -> str:
        """One line per collected field: its value, who set it, from what, when."""
        if not obj.provenance:
            return _("Nothing collected yet.")
        rows = []
        for field, entry in sorted(obj.provenance.items(), key=lambda item: _field_order(item[0])):
            entry = entry or {}
            source = entry.get("source") or ""
            label = dict(FieldSource.choices).get(source, source)
            if entry.get("confidence") == Confidence.GUESSED:
                label = format_html("{} ({})", label, Confidence.GUESSED.label)
            if entry.get("message_id"):
                url = reverse("admin:conversations_message_change", args=[entry["message_id"]])
                origin = format_html('<a href="{}">{} #{}</a>', url, _("from message"), entry["message_id"])
            elif entry.get("user"):
                origin = format_html("{} {}", _("by"), entry["user"])
            else:
                origin = ""
            at = parse_datetime(entry.get("at") or "")
            value = obj.order_number if field == "order_number" else obj.value_of(field)
            rows.append((field.replace("_", " "), value or "—", label, origin, f"{at:%Y-%m-%d %H:%M}" if at else ""))
        body = format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            '<table class="provenance"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            _("field"), _("value"), _("source"), _("origin"), _("when"), body,
        )  # fmt: skip

    def get_search_results(self, request, queryset, search_term):
        # The console's search: one trigram index over every profile field.
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        return queryset.filter(profile_search_condition(term)), False

    def has_add_permission(self, request):
        # Profiles come from WhatsApp messages (keyed by the identity Meta first gave).
        return False

    def save_model(self, request, obj, form, change):
        stored = ClientProfile.objects.get(pk=obj.pk)
        for name in EDITABLE_FIELDS:
            if name in form.changed_data:
                try:
                    profile_field_set(profile=stored, field=name, value=form.cleaned_data[name], source=FieldSource.STAFF, user=request.user)
                except FieldValueError as exc:  # the form already checked; a race may still land here
                    messages.error(request, str(exc))
        obj.refresh_from_db()


def _field_order(field: str) -> tuple[int, str]:
    return (STANDARD_FIELDS.index(field), "") if field in STANDARD_FIELDS else (len(STANDARD_FIELDS), field)
