"""Django admin for bot configurations: every save is a new version, the history is listed
on the page, and any earlier version can be restored (the restore is a new version too).
The pages say what needs an admin: open alerts, a retired stored prompt, the date OpenAI
shuts each configured model down (as the hourly check last read it: the page never waits
on OpenAI)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from profiles.models import STANDARD_FIELDS
from profiles.services import DEFAULT_ORDER_NUMBER_PATTERN

from .agent.prompts import FIXED_MESSAGE_KINDS, FIXED_MESSAGES
from .agent.replies import model_for
from .models import BotConfig, BotConfigVersion
from .services.alerts import alerts_open
from .services.botconfig import (
    EXTRA_FIELD_KEY,
    STORED_PROMPT_HINT,
    bot_config_default_values,
    bot_config_restore,
    bot_config_retired_prompt,
    bot_config_save,
)
from .services.openai_models import model_shutdowns_known


# The standard fields in the admin's language (FIELD_LABELS are the bot's words, by customer language).
STAFF_FIELD_LABELS = {
    "first_name": gettext_lazy("first name"),
    "last_name": gettext_lazy("last name"),
    "company": gettext_lazy("company"),
    "email": gettext_lazy("email"),
    "order_number": gettext_lazy("order number"),
}
# The bot's fixed messages, edited as one text per kind and language (`BotConfig.fixed_messages`).
FIXED_MESSAGE_LABELS = {
    "holding": gettext_lazy("Holding message (the AI cannot answer)"),
    "handoff": gettext_lazy("Hand-off message"),
    "away": gettext_lazy("Hand-off message when nobody is available"),
    "media": gettext_lazy("Media acknowledgement"),
}
FIXED_MESSAGE_HELP = {
    "holding": gettext_lazy("Sent once when OpenAI fails for good; the conversation goes to the human queue."),
    "handoff": gettext_lazy("Sent when the conversation goes to a person."),
    "away": gettext_lazy("Sent instead of the hand-off message outside business hours; {back} says when a person is back."),
    "media": gettext_lazy(
        "The answer to a video, a document, a sticker (and a voice note or an image the bot cannot understand); {type} "
        "names the media type in the customer's language."
    ),
}
# (form field, kind, language) of each text, kind by kind.
FIXED_MESSAGE_FIELDS = [(f"fixed_{kind}_{code}", kind, code) for kind in FIXED_MESSAGE_KINDS for code, _name in settings.LANGUAGES]


def _fixed_message_field(kind: str, code: str, name: str) -> forms.CharField:
    built_in = FIXED_MESSAGES[kind].get(code, "")
    return forms.CharField(
        label=format_lazy("{} ({})", FIXED_MESSAGE_LABELS[kind], name),
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": built_in}),
        help_text=format_lazy(
            "{} {}", FIXED_MESSAGE_HELP[kind],
            gettext_lazy("Empty: the built-in text (shown greyed), or the business language's when there is none."),
        ),
    )  # fmt: skip


class BotConfigForm(forms.ModelForm):
    fields_to_collect = forms.MultipleChoiceField(
        choices=[(f, STAFF_FIELD_LABELS[f]) for f in STANDARD_FIELDS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=gettext_lazy("Asked in this order, then the extra fields below."),
    )

    class Meta:
        model = BotConfig
        exclude = ("fixed_messages",)  # edited as one text per kind and language (FIXED_MESSAGE_FIELDS)
        help_texts = {
            "instructions": gettext_lazy("The known and missing customer fields and the summary are appended every turn."),
            "temperature": gettext_lazy(
                "Empty for reasoning models (the GPT-5 and GPT-6 families): OpenAI refuses a temperature with them."
            ),
            "vector_store_ids": gettext_lazy('The company\'s knowledge for the file_search tool: ["vs_…"].'),
            "extra_fields": gettext_lazy(
                'More fields to collect: [{"key": "vat_number", "label": "Partita IVA", "description": "…"}].'
            ),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].help_text = _("Empty: OPENAI_MODEL (now %(model)s).") % {"model": settings.OPENAI_MODEL}
        self.fields["order_number_pattern"].help_text = _(
            "A regular expression the whole order number must match. Empty: %(pattern)s"
        ) % {"pattern": DEFAULT_ORDER_NUMBER_PATTERN}
        own = self.instance.fixed_messages or {}
        for name, kind, code in FIXED_MESSAGE_FIELDS:
            text = (own.get(kind) or {}).get(code)
            self.fields[name].initial = text if isinstance(text, str) else ""

    def clean_extra_fields(self):
        value = self.cleaned_data.get("extra_fields") or []
        if not isinstance(value, list):
            raise forms.ValidationError(_("A list of {key, label, description} objects."))
        for item in value:
            key = item.get("key") if isinstance(item, dict) else None
            if not key or not EXTRA_FIELD_KEY.fullmatch(str(key)) or key in STANDARD_FIELDS or key == "language":
                raise forms.ValidationError(
                    _("Bad key %(key)r: lowercase letters, digits and _, starting with a letter, not a standard field.")
                    % {"key": key}
                )
        return value

    def clean(self):
        """The texts into `fixed_messages`, by kind and language: an empty one is left out (the
        built-in one speaks), a language the form does not show is kept as it was."""
        cleaned = super().clean()
        texts_by_kind = {kind: dict(texts) for kind, texts in (self.instance.fixed_messages or {}).items() if isinstance(texts, dict)}
        for name, kind, code in FIXED_MESSAGE_FIELDS:
            texts = texts_by_kind.setdefault(kind, {})
            if cleaned.get(name):
                texts[code] = cleaned[name]
            else:
                texts.pop(code, None)
        self.instance.fixed_messages = {kind: texts for kind, texts in texts_by_kind.items() if texts}
        return cleaned

    def clean_vector_store_ids(self):
        value = self.cleaned_data.get("vector_store_ids") or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise forms.ValidationError(_('A list of vector store ids: ["vs_…"].'))
        return [v.strip() for v in value]

    def clean_order_number_pattern(self):
        value = self.cleaned_data.get("order_number_pattern", "")
        try:
            re.compile(value)
        except re.error as exc:
            raise forms.ValidationError(_("Not a valid regular expression: %(error)s") % {"error": exc}) from None
        return value


# Declared on the class (not added per instance), so the form the admin builds for its fieldsets knows them.
_fixed_fields = {name: _fixed_message_field(kind, code, dict(settings.LANGUAGES)[code]) for name, kind, code in FIXED_MESSAGE_FIELDS}
BotConfigForm.base_fields.update(_fixed_fields)
BotConfigForm.declared_fields.update(_fixed_fields)


@admin.register(BotConfig)
class BotConfigAdmin(admin.ModelAdmin):
    form = BotConfigForm
    list_display = ("name", "channel", "model_in_force", "model_shutdown", "is_active", "version", "updated_at", "updated_by")
    list_filter = ("is_active",)
    readonly_fields = ("version", "updated_at", "updated_by", "model_in_force", "model_shutdown", "history")
    change_form_template = "admin/conversations/botconfig/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "channel", "is_active", "version", "updated_at", "updated_by")}),
        (gettext_lazy("Model"), {"fields": ("model", "model_in_force", "model_shutdown", "instructions", "temperature", "max_output_tokens")}),
        (gettext_lazy("Knowledge and data to collect"), {
            "fields": ("vector_store_ids", "fields_to_collect", "extra_fields", "order_number_pattern"),
        }),
        (gettext_lazy("Messages"), {"fields": [tuple(n for n, k, _c in FIXED_MESSAGE_FIELDS if k == kind) for kind in FIXED_MESSAGE_KINDS]}),
        (gettext_lazy("History (newest first)"), {"fields": ("history",)}),
    )

    @admin.display(description=gettext_lazy("Model in force"), ordering="model")
    def model_in_force(self, obj: BotConfig) -> str:
        """Its own model, or which one `OPENAI_MODEL` gives when it has none."""
        return obj.model or f"— (OPENAI_MODEL: {model_for(obj)})"

    @admin.display(description=gettext_lazy("Shutdown (OpenAI)"))
    def model_shutdown(self, obj: BotConfig) -> str:
        """The day OpenAI shuts the model in force down, as the last hourly check read it."""
        known = model_shutdowns_known()
        if known is None:
            return _("not checked yet (OpenAI is asked every hour)")
        model, checked = model_for(obj), date_format(timezone.localtime(known.checked_at), "SHORT_DATETIME_FORMAT")
        if model not in known.dates:
            return _("%(model)s is not among the models OpenAI lists for this key (checked %(checked)s)") % {
                "model": model, "checked": checked,
            }  # fmt: skip
        day = known.dates[model]
        if day is None:
            return _("none announced (checked %(checked)s)") % {"checked": checked}
        return _("%(day)s (checked %(checked)s)") % {"day": date_format(day, "SHORT_DATE_FORMAT"), "checked": checked}

    @admin.display(description=gettext_lazy("Versions"))
    def history(self, obj: BotConfig):
        if obj is None or obj.pk is None:
            return "-"
        rows = []
        versions = list(obj.versions.select_related("created_by"))
        # The comparison preselected: the version before the current one against the current one.
        older = versions[1].version if len(versions) > 1 else obj.version
        for version in versions:
            data = {k: v for k, v in version.data.items() if k != "instructions"}
            if version.version == obj.version:
                action = _("current")
            else:
                url = reverse("admin:conversations_botconfig_restore", args=[obj.pk, version.version])
                action = format_html(
                    '<button type="submit" form="restore-form" formaction="{}" class="button">{}</button>', url,
                    _("Restore v%(version)s") % {"version": version.version},
                )
            # The radios belong to the diff form (templates: botconfig/change_form.html), outside the change form.
            compare = format_html(
                '<input type="radio" form="diff-form" name="a" value="{v}" aria-label="{a}"{ca}> '
                '<input type="radio" form="diff-form" name="b" value="{v}" aria-label="{b}"{cb}>',
                v=version.version, a=_("Compare v%(version)s (older)") % {"version": version.version}, b=_("Compare v%(version)s (newer)") % {"version": version.version},
                ca=" checked" if version.version == older else "", cb=" checked" if version.version == obj.version else "",
            )  # fmt: skip
            rows.append(format_html(
                "<tr><td>{}</td><td>v{}</td><td>{}</td><td>{}</td><td><details><summary>{}</summary><pre>{}</pre><pre>{}</pre>"
                "</details></td><td>{}</td></tr>",
                compare, version.version, date_format(timezone.localtime(version.created_at), "SHORT_DATETIME_FORMAT"),
                version.created_by or "", _("settings"), version.data.get("instructions", ""),
                json.dumps(data, indent=1, ensure_ascii=False), action,
            ))  # fmt: skip
        diff_url = reverse("admin:conversations_botconfig_diff", args=[obj.pk])
        compare_button = format_html(
            '<button type="submit" form="diff-form" formaction="{}" class="button" data-action="compare">{}</button>',
            diff_url, _("Compare the two chosen versions"),
        )  # fmt: skip
        return format_html(
            '<table class="versions"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>'
            "</thead><tbody>{}</tbody></table><p>{}</p>",
            _("Compare"), _("Version"), _("Saved"), _("By"), _("Settings"),
            format_html_join("", "{}", ((row,) for row in rows)), compare_button,
        )  # fmt: skip

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            self._notices(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET":
            config = self.get_object(request, object_id) if object_id else None
            self._notices(request, config=config)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _notices(self, request, *, config: BotConfig | None = None) -> None:
        """What an admin must act on, above the page: open alerts, OPENAI_PROMPT_ID still set,
        the stored prompt this configuration answered with until OpenAI shut them down."""
        for alert in alerts_open():
            messages.warning(request, alert.text)
        if settings.OPENAI_PROMPT_ID:
            messages.warning(request, _(
                "OPENAI_PROMPT_ID is set (%(id)s), but OpenAI shut stored prompts down on 2026-11-30: the bot answers "
                "with the instructions of its bot configuration. %(hint)s Then remove OPENAI_PROMPT_ID from the environment."
            ) % {"id": settings.OPENAI_PROMPT_ID, "hint": _(STORED_PROMPT_HINT)})  # fmt: skip
        retired = bot_config_retired_prompt(config=config) if config is not None else None
        if retired:
            version = retired.get("version") or _("latest")
            variables = ", ".join(f"{k}={v}" for k, v in (retired.get("variables") or {}).items()) or "—"
            messages.warning(request, _(
                "This configuration answered with the OpenAI stored prompt %(id)s (version %(version)s, variables: "
                "%(variables)s) until OpenAI shut stored prompts down on 2026-11-30; it now answers with the "
                "instructions below. %(hint)s"
            ) % {"id": retired.get("id"), "version": version, "variables": variables, "hint": _(STORED_PROMPT_HINT)})  # fmt: skip

    def get_changeform_initial_data(self, request):
        return {**bot_config_default_values(), "name": "", **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        bot_config_save(config=obj, user=request.user)

    def get_urls(self):
        return [
            path("<int:config_id>/restore/<int:version>/", self.admin_site.admin_view(self.restore_view),
                 name="conversations_botconfig_restore"),  # fmt: skip
            path("<int:config_id>/diff/", self.admin_site.admin_view(self.diff_view), name="conversations_botconfig_diff"),
            *super().get_urls(),
        ]

    def restore_view(self, request, config_id: int, version: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        config = get_object_or_404(BotConfig, pk=config_id)
        if not self.has_change_permission(request, config):
            raise PermissionDenied
        saved = bot_config_restore(config=config, version=version, user=request.user)
        restored = _("Version %(version)s restored as version %(saved)s.") % {"version": version, "saved": saved.version}
        messages.success(request, restored)
        return redirect("admin:conversations_botconfig_change", config.pk)

    def diff_view(self, request, config_id: int):
        """Two versions side by side as a line diff of every setting that differs (?a=older&b=newer)."""
        config = get_object_or_404(BotConfig, pk=config_id)
        if not self.has_view_or_change_permission(request, config):
            raise PermissionDenied
        try:
            numbers = sorted({int(request.GET["a"]), int(request.GET["b"])})
        except (KeyError, ValueError):
            messages.error(request, _("Choose two versions to compare."))
            return redirect("admin:conversations_botconfig_change", config.pk)
        found = {v.version: v for v in BotConfigVersion.objects.filter(config=config, version__in=numbers)}
        if len(found) != len(numbers):
            messages.error(request, _("There is no such version of this configuration."))
            return redirect("admin:conversations_botconfig_change", config.pk)
        old, new = found[numbers[0]], found[numbers[-1]]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": config, "title": f"{config.name}: v{old.version} → v{new.version}",
            "old": old, "new": new, "changes": version_diff(old=old.data, new=new.data),
        }  # fmt: skip
        return render(request, "admin/conversations/botconfig/diff.html", context)


@dataclass(frozen=True)
class SettingDiff:
    name: str
    lines: list[tuple[str, str]]  # (" ", "-" or "+", the line)


def _lines(value) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True)
    return text.splitlines() or [""]


def version_diff(*, old: dict, new: dict) -> list[SettingDiff]:
    """Each setting whose value differs between two snapshots, as the lines both keep, the lines
    removed and the lines added (difflib's ndiff without its "?" hint lines)."""
    changes = []
    for name in sorted(old.keys() | new.keys()):
        if old.get(name) == new.get(name):
            continue
        lines = [(line[0], line[2:]) for line in difflib.ndiff(_lines(old.get(name, "")), _lines(new.get(name, ""))) if line[0] != "?"]
        changes.append(SettingDiff(name=name, lines=lines))
    return changes
