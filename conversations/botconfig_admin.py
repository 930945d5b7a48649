"""Django admin for bot configurations: every save is a new version, the history is listed
on the page, and any earlier version can be restored (the restore is a new version too)."""

from __future__ import annotations

import json
import re

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from profiles.models import STANDARD_FIELDS
from profiles.services import DEFAULT_ORDER_NUMBER_PATTERN

from .agent.prompts import FIELD_LABELS
from .agent.replies import model_for
from .models import BotConfig
from .services.botconfig import (
    EXTRA_FIELD_KEY,
    bot_config_default_values,
    bot_config_restore,
    bot_config_save,
)


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].help_text = f"Empty: OPENAI_MODEL (now {settings.OPENAI_MODEL})."

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
        value = self.cleaned_data.get("order_number_pattern", "")
        try:
            re.compile(value)
        except re.error as exc:
            raise forms.ValidationError(f"Not a valid regular expression: {exc}") from None
        return value


@admin.register(BotConfig)
class BotConfigAdmin(admin.ModelAdmin):
    form = BotConfigForm
    list_display = ("name", "channel", "model_in_force", "is_active", "version", "updated_at", "updated_by")
    list_filter = ("is_active",)
    readonly_fields = ("version", "updated_at", "updated_by", "model_in_force", "history")
    change_form_template = "admin/conversations/botconfig/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "channel", "is_active", "version", "updated_at", "updated_by")}),
        ("Model", {"fields": ("model", "model_in_force", "instructions", "prompt_id", "prompt_version", "prompt_variables",
                              "temperature", "max_output_tokens")}),
        ("Knowledge and data to collect", {"fields": ("vector_store_ids", "fields_to_collect", "extra_fields", "order_number_pattern")}),
        ("Messages", {"fields": ("holding_message", "handoff_message")}),
        ("History (newest first)", {"fields": ("history",)}),
    )

    @admin.display(description="Model in force", ordering="model")
    def model_in_force(self, obj: BotConfig) -> str:
        """Its own model, or which one `OPENAI_MODEL` gives when it has none."""
        return obj.model or f"— (OPENAI_MODEL: {model_for(obj)})"

    @admin.display(description="Versions")
    def history(self, obj: BotConfig):
        if obj is None or obj.pk is None:
            return "-"
        rows = []
        for version in obj.versions.select_related("created_by"):
            data = {k: v for k, v in version.data.items() if k != "instructions"}
            if version.version == obj.version:
                action = "current"
            else:
                url = reverse("admin:conversations_botconfig_restore", args=[obj.pk, version.version])
                action = format_html(
                    '<button type="submit" form="restore-form" formaction="{}" class="button">Restore v{}</button>', url, version.version
                )
            rows.append(format_html(
                "<tr><td>v{}</td><td>{}</td><td>{}</td><td><details><summary>settings</summary><pre>{}</pre><pre>{}</pre>"
                "</details></td><td>{}</td></tr>",
                version.version, date_format(timezone.localtime(version.created_at), "SHORT_DATETIME_FORMAT"),
                version.created_by or "", version.data.get("instructions", ""), json.dumps(data, indent=1, ensure_ascii=False), action,
            ))  # fmt: skip
        return format_html("<table>{}</table>", format_html_join("", "{}", ((row,) for row in rows)))

    def get_changeform_initial_data(self, request):
        return {**bot_config_default_values(), "name": "", **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        bot_config_save(config=obj, user=request.user)

    def get_urls(self):
        return [
            path("<int:config_id>/restore/<int:version>/", self.admin_site.admin_view(self.restore_view),
                 name="conversations_botconfig_restore"),  # fmt: skip
            *super().get_urls(),
        ]

    def restore_view(self, request, config_id: int, version: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        config = get_object_or_404(BotConfig, pk=config_id)
        if not self.has_change_permission(request, config):
            raise PermissionDenied
        saved = bot_config_restore(config=config, version=version, user=request.user)
        messages.success(request, f"Version {version} restored as version {saved.version}.")
        return redirect("admin:conversations_botconfig_change", config.pk)
