"""Admin's message templates: the list (status, category, language), a read-only page with
the components and a preview, and "Sync templates now", which reads every channel's
business account from Meta at once (the same sync the periodic task runs)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .models import MessageTemplate
from .services.templates import template_render, template_variables
from .templatesync import templates_sync_all
from .texts import stored_text_translate


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "language", "category", "status", "quality_score", "business_account_id", "listed", "synced_at")
    list_filter = ("status", "category", "language", "quality_score")
    search_fields = ("name", "template_id")
    readonly_fields = (
        "name", "language", "category", "status", "reason", "quality_score", "parameter_format", "business_account_id",
        "template_id", "preview", "variables", "components_json", "status_at", "quality_at", "category_at", "synced_at",
        "deleted_at", "created_at", "updated_at",
    )  # fmt: skip
    exclude = ("components",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True, description=_("listed by Meta"))
    def listed(self, obj: MessageTemplate) -> bool:
        return obj.deleted_at is None

    @admin.display(description=_("preview"))
    def preview(self, obj: MessageTemplate) -> str:
        # The template as the customer reads it, its variables as written ({{1}}, {{name}}).
        return format_html('<div style="white-space: pre-wrap; max-width: 520px">{}</div>', template_render(obj, {}))

    @admin.display(description=_("variables"))
    def variables(self, obj: MessageTemplate) -> str:
        return ", ".join(v.label for v in template_variables(obj)) or "—"

    @admin.display(description=_("components"))
    def components_json(self, obj: MessageTemplate) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.components, indent=2, ensure_ascii=False))

    def get_urls(self):
        return [
            path("sync/", self.admin_site.admin_view(self.sync_view), name="conversations_messagetemplate_sync"),
            *super().get_urls(),
        ]

    def sync_view(self, request):
        """Every channel's business account synced now; what each brought, or Meta's error
        (its message: never the access token, which travels only in a header)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        done = templates_sync_all()
        if not done:
            messages.warning(request, gettext("No active channel has a business account id: there are no templates to sync."))
        for sync in done:
            if sync.error is not None:
                messages.error(
                    request,
                    gettext("Account %(account)s: Meta did not list the templates: %(error)s")
                    % {"account": sync.business_account_id, "error": stored_text_translate(sync.error.reason)},
                )
                continue
            result = sync.result
            text = gettext("Account %(account)s: %(created)d created, %(updated)d updated, %(removed)d removed.") % {
                "account": sync.business_account_id, "created": result.created, "updated": result.updated, "removed": result.removed,
            }  # fmt: skip
            if result.skipped:
                text += " " + gettext("Skipped: %(items)s.") % {"items": "; ".join(result.skipped)}
            if not result.complete:
                text += " " + gettext("The list had more pages than are read: nothing was removed.")
            (messages.warning if result.skipped else messages.success)(request, text)
        return redirect("admin:conversations_messagetemplate_changelist")
