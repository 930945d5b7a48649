"""Django admin for bot configurations: every save is a new version, the history is listed
on the page, and any earlier version can be restored (the restore is a new version too)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from profiles.models import STANDARD_FIELDS
from profiles.services import DEFAULT_ORDER_NUMBER_PATTERN

from ..models import BotConfig, BotConfigVersion
from ..services.botconfig import EXTRA_FIELD_KEY, bot_config_default_values, bot_config_restore, bot_config_save
from .prompts import FIELD_LABELS


class BotConfigForm(forms.ModelForm):
    fields_to_collect = forms.MultipleChoiceField(
        choices=[(f, FIELD_LABELS["en"][f]) for f in STANDARD_FIELDS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Asked in this order, then the extra fields below.",
    )

    class Meta:
        model = BotConfig
        fields = "__all__"
        help_texts = {
            "instructions": "Used when no stored prompt id is set. The known and missing customer fields are appended every turn.",
            "prompt_id": "An OpenAI stored prompt (pmpt_…) instead of the instructions. It receives the variables "
            "known_fields, missing_fields, next_missing_field and summary, plus the ones below.",
            "vector_store_ids": 'The company\'s knowledge for the file_search tool: ["vs_…"].',
            "extra_fields": 'More fields to collect: [{"key": "vat_number", "label": "Partita IVA", "description": "…"}].',
            "order_number_pattern": f"A regular expression the whole order number must match. Empty: {DEFAULT_ORDER_NUMBER_PATTERN}",
        }

    def clean_extra_fields(self):
        value = self.cleaned_data.get("extra_fields") or []
        if not isinstance(value, list):
            raise forms.ValidationError("A list of {key, label, description} objects.")
        for item in value:
            key = item.get("key") if isinstance(item, dict) else None
            if not key or not EXTRA_FIELD_KEY.fullmatch(str(key)) or key in STANDARD_FIELDS or key == "language":
                raise forms.ValidationError(
                    f"Bad key {key!r}: lowercase letters, digits and _, starting with a letter, not a standard field."
                )
        return value

    def clean_vector_store_ids(self):
        value = self.cleaned_data.get("vector_store_ids") or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise forms.ValidationError('A list of vector store ids: ["vs_…"].')
        return [v.strip() for v in value]

    def clean_order_number_pattern(self):
        import re

        value = self.cleaned_data.get("order_number_pattern", "")
        try:
            re.compile(value)
        except re.error as exc:
            raise forms.ValidationError(f"Not a valid regular expression: {exc}") from None
        return value


class BotConfigVersionInline(admin.TabularInline):
    model = BotConfigVersion
    extra = 0
    can_delete = False
    fields = ("version", "created_at", "created_by", "changes", "restore")
    readonly_fields = fields
    verbose_name_plural = "History (newest first)"

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="Settings")
    def changes(self, obj: BotConfigVersion):
        data = {k: v for k, v in obj.data.items() if k != "instructions"}
        return format_html("<details><summary>show</summary><pre>{}</pre><pre>{}</pre></details>",
                           obj.data.get("instructions", ""), json.dumps(data, indent=1, ensure_ascii=False))  # fmt: skip

    @admin.display(description="")
    def restore(self, obj: BotConfigVersion):
        if obj.version == obj.config.version:
            return "current"
        url = reverse("admin:conversations_botconfig_restore", args=[obj.config_id, obj.version])
        return format_html(
            '<button type="submit" form="restore-form" formaction="{}" class="button">Restore v{}</button>', url, obj.version
        )


@admin.register(BotConfig)
class BotConfigAdmin(admin.ModelAdmin):
    form = BotConfigForm
    inlines = [BotConfigVersionInline]
    list_display = ("name", "channel", "model", "is_active", "version", "updated_at", "updated_by")
    list_filter = ("is_active",)
    readonly_fields = ("version", "updated_at", "updated_by")
    change_form_template = "admin/conversations/botconfig/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "channel", "is_active", "version", "updated_at", "updated_by")}),
        ("Model", {"fields": ("model", "instructions", "prompt_id", "prompt_version", "prompt_variables", "temperature", "max_output_tokens")}),
        ("Knowledge and data to collect", {"fields": ("vector_store_ids", "fields_to_collect", "extra_fields", "order_number_pattern")}),
        ("Messages", {"fields": ("holding_message", "handoff_message")}),
    )

    def get_changeform_initial_data(self, request):
        return {**bot_config_default_values(), "name": "", **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        bot_config_save(config=obj, user=request.user)

    def save_related(self, request, form, formsets, change):
        # Versions are written by bot_config_save only; the inline is read-only.
        form.save_m2m()

    def get_urls(self):
        return [
            path("<int:config_id>/restore/<int:version>/", self.admin_site.admin_view(self.restore_view),
                 name="conversations_botconfig_restore"),  # fmt: skip
            *super().get_urls(),
        ]

    def restore_view(self, request, config_id: int, version: int):
        return _restore(self, request, config_id, version)


@require_POST
def _restore(model_admin: BotConfigAdmin, request, config_id: int, version: int):
    config = get_object_or_404(BotConfig, pk=config_id)
    if not model_admin.has_change_permission(request, config):
        raise PermissionDenied
    saved = bot_config_restore(config=config, version=version, user=request.user)
    messages.success(request, f"Version {version} restored as version {saved.version}.")
    return redirect("admin:conversations_botconfig_change", config.pk)
