"""Every webhook delivery as received, and a way to process a verified one again."""

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from conversations.admin import BigTableAdminMixin

from .models import WebhookEvent
from .services import webhook_event_replay


@admin.register(WebhookEvent)
class WebhookEventAdmin(BigTableAdminMixin, admin.ModelAdmin):
    # Few, narrow columns so the list fits a laptop screen beside the admin's sidebar and filters (the provider is a filter).
    list_display = ["id", "received_at", "channel", "outcome", "signature_valid", "counts", "short_detail"]
    list_select_related = ["channel"]
    list_filter = [("received_at", admin.DateFieldListFilter), "outcome", "signature_valid", "provider", "channel"]
    search_fields = ["=id", "detail"]
    ordering = ["-received_at", "-id"]
    actions = ["replay"]
    fields = [
        "received_at", "processed_at", "provider", "channel", "outcome", "detail", "skipped_items", "signature_valid", "signature",
        "message_count", "status_count", "pretty_body",
    ]  # fmt: skip
    readonly_fields = fields

    @admin.display(description=_("messages / statuses"))
    def counts(self, obj: WebhookEvent) -> str:
        return f"{obj.message_count} / {obj.status_count}"

    @admin.display(description=_("detail"))
    def short_detail(self, obj: WebhookEvent) -> str:
        # Cut short so the list fits a laptop screen; the whole detail is the cell's tooltip and on the event's page.
        if not obj.detail:
            return ""
        return format_html('<span title="{}">{}</span>', obj.detail, Truncator(obj.detail).chars(60))

    @admin.display(description=_("skipped items"))
    def skipped_items(self, obj: WebhookEvent) -> str:
        if not obj.skipped:
            return "—"
        rows = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>", ((s["kind"], s["id"], s["reason"]) for s in obj.skipped))
        head = format_html("<tr><th>{}</th><th>{}</th><th>{}</th></tr>", _("kind"), _("provider id"), _("reason"))
        return format_html("<table>{}{}</table>", head, rows)

    @admin.display(description=_("body"))
    def pretty_body(self, obj: WebhookEvent) -> str:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python reads
            text = obj.body
        return format_html('<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>', text)

    @admin.action(description=_("Replay selected events (verified ones only)"))
    def replay(self, request, queryset: QuerySet) -> None:
        replayed, skipped, failed = 0, 0, 0
        for event in queryset.order_by("received_at", "id"):
            if not event.signature_valid:
                skipped += 1
                continue
            receipt = webhook_event_replay(event=event)
            if receipt.status == 200:
                replayed += 1
            else:
                failed += 1
        if replayed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event replayed (duplicates of stored messages are ignored).",
                    "%(count)d events replayed (duplicates of stored messages are ignored).",
                    replayed,
                )
                % {"count": replayed},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event skipped: its signature was not valid.",
                    "%(count)d events skipped: their signature was not valid.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
        if failed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d replay failed: see the newest events for the reason.",
                    "%(count)d replays failed: see the newest events for the reason.",
                    failed,
                )
                % {"count": failed},
                messages.ERROR,
            )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
