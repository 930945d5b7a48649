"""The staff console: conversation list, thread, client profile. Thin views: reads come
from `conversations.selectors`, writes go through `conversations.services.console`.

Every page is one template; what htmx swaps is a `{% partialdef %}` of that template, and
a view renders just the partial when `request.htmx` is true. Links keep a real `href`,
forms a real `action`, so the console still works (without live updates) without JavaScript.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from datetime import timezone as dt_timezone

from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from conversations.roles import is_admin
from profiles.models import FieldSource
from profiles.selectors import profile_preference_changes
from profiles.services import FieldValueError, profile_field_set

from .. import selectors
from ..models import Conversation, ConversationStatus, MessageType
from ..services import console as actions
from ..services import desk
from ..services.attachments import AttachmentRefused, accept_of, attachment_check
from ..services.templates import template_header_file_kind, template_render, template_variables
from ..templatetags import console_tags
from .access import staff_required
from .forms import ListForm, NoteForm, NotifyForm, ReactForm, ReplyForm
from .links import pk_url, thread_urls

# Re-rendered on a thread poll that saw a change, so their ticks and reactions update.
RECENT_RERENDER = 30


def _no_change() -> HttpResponse:
    # htmx swaps nothing on a 204 and keeps polling.
    return HttpResponse(status=204)


def _conversation_or_404(pk: int) -> Conversation:
    try:
        return selectors.conversation_get(conversation_id=pk)
    except Conversation.DoesNotExist:
        raise Http404 from None


# --- Conversation list -------------------------------------------------------------------------


def _rows_present(rows: list[Conversation]) -> None:
    """What each list row shows, worked out here once: the list template is the hot loop of
    every list and thread page (50 rows), and a Python attribute costs a fraction of a
    template filter or `{% url %}`."""
    today, now = timezone.localdate(), timezone.now()
    for row in rows:
        name = row.profile.display_name
        row.ident = str(row.pk)
        row.url = pk_url("console:thread", row.pk)
        row.unread = str(row.unread_count) if row.unread_count else ""
        row.name = name
        row.initials = console_tags.initials(name)
        row.when = console_tags.list_time(row.last_message_at, today)
        row.when_iso = timezone.localtime(row.last_message_at).isoformat() if row.last_message_at else ""
        row.state = console_tags.owner_state(row)
        row.assignee_name = console_tags.staff_name(row.assigned_to) if row.assigned_to_id else ""
        row.resolved = row.status == ConversationStatus.RESOLVED
        row.complete = row.fields_filled == row.fields_wanted
        row.completeness = f"{row.fields_filled}/{row.fields_wanted}"
        row.waited = console_tags.waited(row.waiting, now)
        row.waiting_iso = row.waiting.isoformat() if row.waiting else ""


def _list_context(request: HttpRequest, *, limit: int = selectors.PAGE_SIZE) -> dict:
    params = ListForm(request.GET).values()
    # Read before the rows, so a change made while they load is seen by the next poll.
    since = selectors.conversations_last_change()
    page = selectors.conversation_list(user=request.user, limit=limit, **params)
    _rows_present(page.rows)
    return {
        **_sidebar_context(request, params),
        "page": page,
        "cursor": params["cursor"],
        "since": since.isoformat() if since else "",
    }


def _sidebar_context(request: HttpRequest, params: dict) -> dict:
    """The sidebar around the list: menu, search box, filters."""
    return {
        "perms_admin": is_admin(request.user),
        "q": params["query"],
        "filter": params["list_filter"],
        "filters": [
            (selectors.ListFilter.ALL, _("All")),
            (selectors.ListFilter.NEEDS_HUMAN, _("Needs a human")),
            (selectors.ListFilter.MINE, _("Mine")),
            (selectors.ListFilter.UNASSIGNED, _("Unassigned")),
            (selectors.ListFilter.RESOLVED, _("Resolved")),
        ],
    }


def _menu_context(request: HttpRequest) -> dict:
    """The menu's availability and notification toggles (full pages only: the list's
    searches and polls render no menu)."""
    menu = selectors.staff_menu(user=request.user)
    return {"me_available": menu["available"], "notify": menu}


@staff_required
@require_GET
@never_cache
def inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "console/inbox.html", {**_list_context(request), **_menu_context(request)})


@staff_required
@require_GET
@never_cache
def conversation_rows(request: HttpRequest) -> HttpResponse:
    """Search, filter, and the next page when the list is scrolled to its end."""
    if not request.htmx:
        return redirect(f"{reverse('console:inbox')}?{request.GET.urlencode()}")
    context = _list_context(request)
    partial = "list_rows" if context["cursor"] else "list_body"
    return render(request, f"console/inbox.html#{partial}", context)


@staff_required
@require_GET
@never_cache
def list_poll(request: HttpRequest) -> HttpResponse:
    """204 unless a conversation changed after `since` (one indexed query); otherwise the
    list again, as many rows as the operator had loaded (so the scroll position holds)."""
    since = parse_datetime(request.GET.get("since", ""))
    if since is None or timezone.is_naive(since):
        since = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
    if selectors.conversations_changed_since(since=since) is None:
        return _no_change()
    try:
        count = max(selectors.PAGE_SIZE, min(int(request.GET.get("count", 0)), selectors.LIST_REFRESH_MAX))
    except ValueError:
        count = selectors.PAGE_SIZE
    return render(request, "console/inbox.html#list_body", _list_context(request, limit=count))


@staff_required
@require_GET
@never_cache
def needs_poll(request: HttpRequest) -> HttpResponse:
    """The conversations that need this member of staff, for the page to tell them (a
    notification, a sound, the count in the tab's title). Polled like the list: 204 unless a
    conversation changed after `since` (one indexed query), else the list (one more)."""
    since = parse_datetime(request.GET.get("since", ""))
    if since is not None and not timezone.is_naive(since) and selectors.conversations_changed_since(since=since) is None:
        return _no_change()
    # Read before the rows, so a change made while they load is seen by the next poll.
    latest = selectors.conversations_last_change()
    waiting = selectors.needs_person_for(user=request.user)
    return JsonResponse(
        {
            "since": latest.isoformat() if latest else "",
            "waiting": [
                {
                    "id": w.id, "name": w.name, "cause": w.cause, "since": w.since.isoformat(),
                    "url": pk_url("console:thread", w.id),
                }  # fmt: skip
                for w in waiting
            ],
        }
    )


@staff_required
@require_POST
def notify_set(request: HttpRequest) -> HttpResponse:
    """The menu's toggles: desktop notifications (the page has asked the browser's permission
    first), the sound."""
    form = NotifyForm(request.POST)
    if form.is_valid():
        actions.staff_notify_set(user=request.user, notify=form.cleaned_data["notify"], sound=form.cleaned_data["sound"])
    next_url = request.POST.get("next") or reverse("console:inbox")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("console:inbox")
    return redirect(next_url)


# --- Thread --------------------------------------------------------------------------------------


def _window(conversation: Conversation) -> dict:
    now = timezone.now()
    closes = conversation.window_closes_at
    return {"open": conversation.window_open(now), "closes_at": closes}


def _templates_context(conversation: Conversation, window: dict, chosen: str = "") -> dict:
    """The template composer of a conversation whose window is closed: the templates it may
    send and, once one is chosen, its form."""
    if window["open"]:
        return {}
    templates = selectors.templates_offered(conversation=conversation)
    template = next((t for t in templates if str(t.pk) == chosen and not t.disabled_reason), None)
    return {"templates": templates, **(_template_form_context(template, {}) if template else {})}


def _template_form_context(template, values: dict, errors: dict | None = None) -> dict:
    """A chosen template's form: one input per variable (value, error) and the preview."""
    errors = errors or {}
    fields = [{"variable": v, "value": values.get(v.key, ""), "error": errors.get(v.key, "")} for v in template_variables(template)]
    file_kind = template_header_file_kind(template)
    return {
        "template": template,
        "template_fields": fields,
        "header_file_accept": accept_of(file_kind) if file_kind else "",
        "template_error": errors.get("", ""),
        **_template_preview_context(template, values),
    }


def _template_preview_context(template, values: dict, file_name: str = "") -> dict:
    """`file_name`: the file chosen for the header (the page sends its name, never the file)."""
    return {"preview": template_render(template, values), "preview_link": values.get("header.link", ""), "preview_file": file_name}


def _thread_context(request: HttpRequest, conversation: Conversation) -> dict:
    thread = selectors.thread_messages(conversation_id=conversation.pk)
    profile_fields = selectors.profile_panel(conversation=conversation)
    window = _window(conversation)
    return {
        **_templates_context(conversation, window, request.GET.get("template", "")),
        "conversation": conversation,
        "urls": thread_urls(conversation.pk),
        "thread": thread,
        "newest_id": thread.newest_id,
        "window": window,
        "notes": selectors.conversation_notes(conversation_id=conversation.pk),
        "preference_changes": profile_preference_changes(profile_id=conversation.profile_id),
        "pricing": selectors.conversation_pricing(conversation_id=conversation.pk),
        "profile_fields": profile_fields,
        "missing_fields": [f.label for f in profile_fields if f.missing],
        "staff": selectors.staff_members(),
        "quick_replies": selectors.quick_replies_active(),
    }


@staff_required
@require_GET
@never_cache
def thread(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = _conversation_or_404(pk)
    # Nothing to reset (the usual case): no UPDATE. A message that arrives after the read
    # above bumps the revision, and the poll that brings it marks it read.
    if conversation.unread_count and actions.conversation_mark_read(conversation_id=pk):
        conversation.unread_count = 0
    context = _thread_context(request, conversation)
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "console/thread.html#thread_pane", context)
    # The whole page draws the list with a second request (`hx-trigger="load"`), so the
    # thread is not held up by 50 list rows (and a phone, which shows only the thread, still
    # has the list one tap away).
    sidebar = _sidebar_context(request, ListForm(request.GET).values())
    return render(
        request, "console/thread.html", {**sidebar, **context, **_menu_context(request), "lazy_list": True, "active_id": pk}
    )


@staff_required
@require_GET
@never_cache
def thread_poll(request: HttpRequest, pk: int) -> HttpResponse:
    """204 unless the conversation's revision moved past `rev` (one query by primary key).
    Otherwise: new messages, the recent ones again (ticks, reactions), the header, and the
    composer if the 24-hour window opened or closed."""
    try:
        revision = int(request.GET.get("rev", ""))
        after = int(request.GET.get("after") or 0)
    except ValueError:
        return HttpResponse(status=400)
    if selectors.conversation_poll(conversation_id=pk, revision=revision) is None:
        return _no_change()
    conversation = _conversation_or_404(pk)
    if actions.conversation_mark_read(conversation_id=pk):
        conversation.unread_count = 0
    new = selectors.thread_messages(conversation_id=pk, after_id=after)
    recent = selectors.thread_messages(conversation_id=pk, before_id=after + 1, limit=RECENT_RERENDER) if after else None
    if recent and recent.messages and new.messages:
        # The first new message needs a separator only if its day differs from the last one shown.
        # (A re-drawn message keeps its own; the page keeps only the first separator of each day.)
        new.messages[0].show_day = new.messages[0].day != recent.messages[-1].day
    window = _window(conversation)
    window_changed = str(int(window["open"])) != request.GET.get("win")
    return render(
        request,
        "console/thread.html#thread_update",
        {
            **(_templates_context(conversation, window) if window_changed else {}),
            "conversation": conversation,
            "urls": thread_urls(pk),
            "new_messages": new.messages,
            "recent_messages": recent.messages if recent else [],
            "newest_id": new.newest_id or after,
            "window": window,
            "window_changed": window_changed,
            "quick_replies": selectors.quick_replies_active() if window["open"] else [],
            "staff": selectors.staff_members(),
        },
    )


@staff_required
@require_GET
@never_cache
def thread_older(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        before = int(request.GET["before"])
    except (KeyError, ValueError):
        return HttpResponse(status=400)
    thread = selectors.thread_messages(conversation_id=pk, before_id=before)
    return render(
        request, "console/thread.html#older", {"conversation": {"pk": pk}, "urls": thread_urls(pk), "thread": thread}
    )


# Served inline (shown, played) only when the browser can only show them; anything else (an
# SVG, HTML, a PDF: files that can carry script) is a download.
MEDIA_INLINE_TYPES = {
    "image/jpeg", "image/png", "image/webp", "image/gif", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr",
    "audio/webm", "video/mp4", "video/3gpp", "video/webm",
}  # fmt: skip
# What a served file may do if opened on its own: nothing (no script, no requests, a sandbox).
MEDIA_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


@staff_required
@require_GET
def media(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """A message's stored media, to logged-in staff only (`staff_required`: never a public URL),
    and only through the conversation it belongs to."""
    media_file = selectors.media_stored(conversation_id=pk, message_id=message_id)
    if media_file is None:
        raise Http404
    try:
        handle = media_file.file.open("rb")
    except OSError:  # gone from the storage (deleted by hand, another backend's outage)
        raise Http404 from None
    mime_type = media_file.mime_type or "application/octet-stream"
    inline = media_file.message.type != MessageType.DOCUMENT and mime_type.split(";")[0].strip().lower() in MEDIA_INLINE_TYPES
    filename = media_file.filename or media_file.file.name.rsplit("/", 1)[-1]
    response = FileResponse(handle, content_type=mime_type, as_attachment=not inline, filename=filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = MEDIA_CSP
    return response


# --- Availability --------------------------------------------------------------------------------


@staff_required
@require_POST
def availability(request: HttpRequest) -> HttpResponse:
    """The staff member is available (hand-offs come to them) or away (theirs are handed on)."""
    available = request.POST.get("available") == "1"
    handed_on = desk.staff_availability_set(user=request.user, available=available)
    if available:
        flash.success(request, _("You are available: hand-offs come to you."))
    else:
        flash.success(
            request,
            ngettext(
                "You are away: %(n)d conversation went back to the queue or to a colleague.",
                "You are away: %(n)d conversations went back to the queue or to colleagues.",
                handed_on,
            ) % {"n": handed_on} if handed_on else _("You are away: no hand-offs come to you."),
        )  # fmt: skip
    next_url = request.POST.get("next") or reverse("console:inbox")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("console:inbox")
    return redirect(next_url)


# --- Actions -------------------------------------------------------------------------------------


def _action_done(request: HttpRequest, pk: int, *, ok: str = "", error: str = "", event: str = "") -> HttpResponse:
    """htmx: the message goes into the thread's flash area and the thread polls at once.
    Without JavaScript: back to the thread page with the message."""
    if not request.htmx:
        if error:
            flash.error(request, error)
        elif ok:
            flash.success(request, ok)
        return redirect("console:thread", pk=pk)
    response = render(request, "console/thread.html#flash", {"error": error, "ok": ok})
    events = {"poll-now": True}
    if event and not error:
        events[event] = True
    response["HX-Trigger"] = json.dumps(events)
    return response


def conversation_action(view):
    """A POST on one conversation: a missing conversation (the services raise
    Conversation.DoesNotExist when their UPDATE finds no row) is a 404."""

    @functools.wraps(view)
    def inner(request: HttpRequest, pk: int) -> HttpResponse:
        try:
            return view(request, pk)
        except Conversation.DoesNotExist:
            raise Http404 from None

    return staff_required(require_POST(inner))


@conversation_action
def take_over(request: HttpRequest, pk: int) -> HttpResponse:
    result = actions.conversation_take_over(conversation_id=pk, user=request.user)
    if not result.won:
        return _action_done(
            request, pk, error=_("%(name)s took this conversation over first.") % {"name": result.holder}
        )
    return _action_done(request, pk, ok=_("You are handling this conversation: the bot will not answer."))


@conversation_action
def hand_back(request: HttpRequest, pk: int) -> HttpResponse:
    actions.conversation_hand_back(conversation_id=pk, user=request.user)
    return _action_done(request, pk, ok=_("Handed back to the bot."))


@conversation_action
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    actions.conversation_resolve(conversation_id=pk, user=request.user)
    return _action_done(request, pk, ok=_("Resolved. The bot will answer the next message."))


@conversation_action
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    actions.conversation_reopen(conversation_id=pk, user=request.user)
    return _action_done(request, pk, ok=_("Reopened."))


@conversation_action
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    assignee = None
    raw = request.POST.get("assignee", "")
    if raw:
        assignee = get_user_model().objects.filter(pk=raw if raw.isdigit() else 0, is_active=True, is_staff=True).first()
        if assignee is None:
            return _action_done(request, pk, error=_("Choose an active staff member."))
    actions.conversation_assign(conversation_id=pk, assignee=assignee, user=request.user)
    if assignee is None:
        return _action_done(request, pk, ok=_("Unassigned: the conversation waits for a human in the queue."))
    name = actions.staff_name(assignee)
    return _action_done(request, pk, ok=_("Assigned to %(name)s.") % {"name": name})


@conversation_action
def reply(request: HttpRequest, pk: int) -> HttpResponse:
    """A text, or an image or document with a caption (a multipart POST): the file is checked
    (type from its bytes, size) before anything is stored."""
    form = ReplyForm(request.POST, request.FILES)
    if not form.is_valid():
        return _action_done(request, pk, error=_("Write a message first (at most 4096 characters)."))
    attachment = None
    if upload := form.cleaned_data["file"]:
        try:
            attachment = attachment_check(upload, claimed_type=upload.content_type or "")
        except AttachmentRefused as exc:
            return _action_done(request, pk, error=str(exc))
    try:
        actions.conversation_reply(conversation_id=pk, user=request.user, text=form.cleaned_data["text"], attachment=attachment)
    except actions.ConsoleActionError as exc:
        return _action_done(request, pk, error=str(exc))
    return _action_done(request, pk, event="reply-sent")


@conversation_action
def react(request: HttpRequest, pk: int) -> HttpResponse:
    """React to a customer's message (or, with no emoji, take the reaction away)."""
    form = ReactForm(request.POST)
    if not form.is_valid():
        return _action_done(request, pk, error=_("Choose one of the reactions offered."))
    try:
        actions.conversation_react(
            conversation_id=pk, user=request.user, message_id=form.cleaned_data["message"], emoji=form.cleaned_data["emoji"]
        )
    except actions.ConsoleActionError as exc:
        return _action_done(request, pk, error=str(exc))
    return _action_done(request, pk)


@conversation_action
def note_add(request: HttpRequest, pk: int) -> HttpResponse:
    form = NoteForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            actions.conversation_note_add(conversation_id=pk, user=request.user, text=form.cleaned_data["text"])
        except actions.ConsoleActionError as exc:
            error = str(exc)
    else:
        error = _("Write the note first (at most 4000 characters).")
    if not request.htmx:
        if error:
            flash.error(request, error)
        return redirect("console:thread", pk=pk)
    return render(
        request,
        "console/thread.html#notes",
        {
            "conversation": {"pk": pk},
            "urls": thread_urls(pk),
            "notes": selectors.conversation_notes(conversation_id=pk),
            "note_error": error,
        },
    )


# --- Templates (the composer once the 24-hour window has closed) ---------------------------------


def _template_or_404(conversation: Conversation, template_id: str):
    template = selectors.template_offered(conversation=conversation, template_id=template_id)
    if template is None or template.disabled_reason:
        raise Http404
    return template


def _template_values(request: HttpRequest, template) -> dict:
    return {v.key: request.POST.get(v.key, "") for v in template_variables(template) if v.kind != "file"}


@staff_required
@require_GET
@never_cache
def template_form(request: HttpRequest, pk: int) -> HttpResponse:
    """The chosen template's form (htmx); without JavaScript, the thread page with it."""
    chosen = request.GET.get("template", "")
    if not request.htmx:
        return redirect(f"{pk_url('console:thread', pk)}?template={chosen}" if chosen.isdigit() else pk_url("console:thread", pk))
    conversation = _conversation_or_404(pk)
    context = {"conversation": conversation, "urls": thread_urls(pk)}
    if chosen:
        context.update(_template_form_context(_template_or_404(conversation, chosen), {}))
    return render(request, "console/thread.html#template_form", context)


@staff_required
@require_POST
@never_cache
def template_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """What the customer will read with the values typed so far (the renderer the sent
    message's text comes from)."""
    template = _template_or_404(_conversation_or_404(pk), request.POST.get("template", ""))
    context = _template_preview_context(template, _template_values(request, template), request.POST.get("header.file_name", "")[:200])
    return render(request, "console/thread.html#template_preview", context)


@conversation_action
def template_send(request: HttpRequest, pk: int) -> HttpResponse:
    """A template (a multipart POST when a file is attached for its header: checked, type
    from its bytes, before anything is stored)."""
    conversation = _conversation_or_404(pk)
    template_id = request.POST.get("template", "")
    template = selectors.template_offered(conversation=conversation, template_id=template_id)
    values = _template_values(request, template) if template is not None else {}
    try:
        attachment = None
        if upload := request.FILES.get("header.file"):
            try:
                attachment = attachment_check(upload, claimed_type=upload.content_type or "")
            except AttachmentRefused as exc:
                raise actions.TemplateNotFilled({"header.file": str(exc)}) from None
        actions.conversation_template_send(
            conversation_id=pk, user=request.user, template_id=int(template_id) if template_id.isdigit() else 0, values=values,
            attachment=attachment,
        )  # fmt: skip
    except actions.TemplateNotFilled as exc:
        if not request.htmx or template is None:
            return _action_done(request, pk, error=str(exc))
        # The form again, each error beside its input (a file input cannot be refilled: chosen again).
        context = {"conversation": conversation, "urls": thread_urls(pk), **_template_form_context(template, values, exc.errors)}
        response = render(request, "console/thread.html#template_form", context)
        response["HX-Retarget"], response["HX-Reswap"] = "#template-form", "outerHTML"
        return response
    except actions.ConsoleActionError as exc:
        return _action_done(request, pk, error=str(exc))
    if not request.htmx:
        return _action_done(request, pk, ok=_("Template sent."))
    # A fresh composer (no template chosen), and the thread polls at once for the message.
    conversation = _conversation_or_404(pk)
    window = _window(conversation)
    context = {"conversation": conversation, "urls": thread_urls(pk), "window": window, **_templates_context(conversation, window)}
    response = render(request, "console/thread.html#composer", context)
    response["HX-Retarget"], response["HX-Reswap"] = "#composer", "outerHTML"
    response["HX-Trigger"] = json.dumps({"poll-now": True})
    return response


# --- Client profile ------------------------------------------------------------------------------


def _profile_field(conversation: Conversation, key: str) -> selectors.ProfileField:
    if key not in selectors.profile_field_keys(conversation=conversation):
        raise Http404
    for field in selectors.profile_panel(conversation=conversation):
        if field.key == key:
            return field
    return selectors.ProfileField(key=key, label=key.replace("_", " "), value="", source=None, at=None)


@staff_required
@never_cache
def profile_field(request: HttpRequest, pk: int, key: str) -> HttpResponse:
    """GET: the field (or, with `?edit=1`, its inline form). POST: save it as a staff value,
    which the AI will neither ask for again nor overwrite."""
    conversation = _conversation_or_404(pk)
    field = _profile_field(conversation, key)
    context = {"conversation": conversation, "field": field}
    if request.method == "POST":
        value = request.POST.get("value", "")
        try:
            profile_field_set(
                profile=conversation.profile, field=key, value=value, source=FieldSource.STAFF, user=request.user
            )
        except FieldValueError as exc:
            if not request.htmx:
                flash.error(request, str(exc))
                return redirect("console:thread", pk=pk)
            return render(request, "console/thread.html#profile_field_form", {**context, "error": str(exc), "value": value})
        if not request.htmx:
            return redirect("console:thread", pk=pk)
        context["field"] = _profile_field(conversation, key)
        context["saved"] = True
        return render(request, "console/thread.html#profile_field", context)
    if request.method != "GET":
        return HttpResponse(status=405)
    if request.GET.get("edit"):
        value = field.value if key != "order_number" else ""
        return render(request, "console/thread.html#profile_field_form", {**context, "value": value})
    return render(request, "console/thread.html#profile_field", context)

