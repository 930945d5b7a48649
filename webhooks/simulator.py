"""The simulator: a phone-like page where any staff member chats as a customer.

What the "customer" types becomes a webhook body shaped like Meta's, signed with the sandbox
channel's own app secret and handed to `webhooks.services.webhook_receive` — the function
behind `/webhooks/whatsapp/` — which verifies the signature, stores the event, the profile,
the conversation and the message, and queues the worker on commit. From there everything is
the production path: the worker claims the message, the agent answers, the answer is stored
pending and handed to the channel's provider. The sandbox provider sends nothing; this page
shows the outbound messages it accepted, and reports "delivered" and "read" back through the
same signed webhook, so the console's ticks move as they would with Meta.

Why call `webhook_receive` rather than POST to our own URL with `requests`: the rows stored
are identical (the only part skipped is Django's request parsing), while a web worker that
calls its own server can deadlock when it is the only free worker (gunicorn sync workers,
`runserver --nothreading`), and from behind a TLS proxy the site's public URL may not be
reachable from inside at all (SECURE_SSL_REDIRECT, ALLOWED_HOSTS, split DNS). Tests post the
very same signed body to the real URL to show it is accepted there too.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django import forms
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from conversations.console.access import staff_required
from conversations.models import (
    Channel,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    Provider,
)
from conversations.services.channels import SANDBOX_PHONE_ID, sandbox_channel_ensure
from integrations.meta.signature import HEADER, sign

from .services import Receipt, webhook_receive

THREAD_LIMIT = 60
# The customer the page writes as: its phone number, or its business-scoped user id (BSUID,
# "IT.13491208655302741918") for a customer Meta knows without a number.
SESSION_WA_ID = "simulator_wa_id"
SESSION_NAME = "simulator_name"
BSUID = re.compile(r"[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}")


def _is_bsuid(customer: str) -> bool:
    return BSUID.fullmatch(customer) is not None


# --- Writes ------------------------------------------------------------------------------------


def simulator_webhook_body(*, channel: Channel, value: dict) -> bytes:
    """A `messages` change for the sandbox number, wrapped the way Meta wraps it."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": channel.display_phone_number, "phone_number_id": channel.phone_number_id},
        **value,
    }
    data = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "sandbox-waba", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(data, ensure_ascii=False).encode()


def simulator_text_body(
    *, channel: Channel, customer: str, name: str, text: str, wamid: str = "", at: int | None = None
) -> bytes:
    """A text of `customer` (a number, or a BSUID: then without a number, as Meta sends a
    username user's)."""
    if _is_bsuid(customer):
        contact, sender = {"user_id": customer}, {"from_user_id": customer}
    else:
        contact, sender = {"wa_id": customer}, {"from": customer}
    return simulator_webhook_body(
        channel=channel,
        value={
            "contacts": [{"profile": {"name": name}, **contact}],
            "messages": [
                {
                    **sender,
                    "id": wamid or f"wamid.sandbox.{uuid.uuid4().hex}",
                    "timestamp": str(at or int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    )


def simulator_signed_post(*, channel: Channel, body: bytes) -> Receipt:
    """Sign as Meta would and hand the body to the webhook's receiving function."""
    return webhook_receive(body=body, headers={HEADER: sign(body, channel.app_secret)})


def simulator_message_send(*, channel: Channel, customer: str, name: str, text: str) -> Receipt:
    body = simulator_text_body(channel=channel, customer=customer, name=name, text=text)
    return simulator_signed_post(channel=channel, body=body)


def simulator_messages_acknowledge(*, channel: Channel, customer: str, wamids: Sequence[str]) -> Receipt | None:
    """The phone got and showed these messages: "delivered" then "read", as Meta reports them."""
    if not wamids:
        return None
    now = int(time.time())
    recipient = {"recipient_user_id": customer} if _is_bsuid(customer) else {"recipient_id": customer}
    statuses = [
        {"id": wamid, "status": status, "timestamp": str(now), **recipient}
        for wamid in wamids
        for status in ("delivered", "read")
    ]
    return simulator_signed_post(channel=channel, body=simulator_webhook_body(channel=channel, value={"statuses": statuses}))


# --- Reads -------------------------------------------------------------------------------------


@dataclass
class PhoneThread:
    conversation: Conversation | None
    messages: list[Message]
    revision: int

    @property
    def unacknowledged(self) -> list[str]:
        """Outbound messages the phone shows but has not reported as read yet."""
        return [
            m.wamid
            for m in self.messages
            if m.direction == Direction.OUTBOUND and m.wamid and m.status in (MessageStatus.SENT, MessageStatus.DELIVERED)
        ]


def sandbox_channel_get() -> Channel | None:
    return Channel.objects.filter(phone_number_id=SANDBOX_PHONE_ID, provider=Provider.SANDBOX).first()


def _conversation_of(channel: Channel, customer: str) -> QuerySet:
    known_by = Q(profile__user_id=customer) if _is_bsuid(customer) else Q(profile__wa_id=customer)
    return Conversation.objects.filter(known_by, channel=channel)


def simulator_revision(*, channel: Channel, customer: str) -> int | None:
    """The thread's change counter: one indexed query, for the cheap poll."""
    return _conversation_of(channel, customer).values_list("revision", flat=True).first()


def simulator_thread(*, channel: Channel, customer: str) -> PhoneThread:
    """What the phone shows: the customer's messages, and what the provider actually sent
    (pending and failed bot messages never reached the phone)."""
    conversation = _conversation_of(channel, customer).select_related("profile").first()
    if conversation is None:
        return PhoneThread(None, [], -1)
    latest = list(
        Message.objects.filter(conversation=conversation)
        .exclude(direction=Direction.OUTBOUND, status__in=[MessageStatus.PENDING, MessageStatus.FAILED])
        .order_by("-id")[:THREAD_LIMIT]
    )
    latest.reverse()
    return PhoneThread(conversation, latest, conversation.revision)


def simulator_customers(*, channel: Channel, limit: int = 20) -> list[Conversation]:
    return list(
        Conversation.objects.filter(channel=channel).select_related("profile").order_by("-last_message_at", "-id")[:limit]
    )


# --- Views -------------------------------------------------------------------------------------


def _random_number() -> str:
    # An Italian mobile shape; the 3900 prefix is not assigned, so it can never be a real customer.
    return "3900" + "".join(random.choice("0123456789") for _ in range(8))


class CustomerForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Customer name"), max_length=60, required=False)
    number = forms.CharField(label=gettext_lazy("WhatsApp number"), max_length=160)  # or a BSUID

    def clean_number(self) -> str:
        if _is_bsuid(self.cleaned_data["number"].strip()):  # a customer without a number, picked from the list
            return self.cleaned_data["number"].strip()
        digits = re.sub(r"[\s+\-().]", "", self.cleaned_data["number"])
        if not re.fullmatch(r"\d{6,15}", digits):
            raise forms.ValidationError(_("Digits only, with the country code (6 to 15 digits)."))
        return digits


class MessageForm(forms.Form):
    text = forms.CharField(max_length=4096, strip=True)


def _identity(request: HttpRequest) -> tuple[str, str]:
    customer = request.session.get(SESSION_WA_ID)
    if not customer:
        customer = request.session[SESSION_WA_ID] = _random_number()
        request.session[SESSION_NAME] = _("Test customer")
    return customer, request.session.get(SESSION_NAME, "")


def _context(request: HttpRequest, channel: Channel | None, **extra) -> dict:
    customer, name = _identity(request)
    thread = simulator_thread(channel=channel, customer=customer) if channel else PhoneThread(None, [], -1)
    return {
        "channel": channel,
        "channel_usable": bool(channel and channel.is_active and channel.app_secret),
        "customer": customer,
        "name": name,
        "thread": thread,
        "customers": simulator_customers(channel=channel) if channel else [],
        "customer_form": CustomerForm(initial={"name": name, "number": customer}),
        **extra,
    }


@require_GET
@never_cache
@staff_required
def simulator(request: HttpRequest) -> HttpResponse:
    channel = sandbox_channel_get() or sandbox_channel_ensure()[0]
    return render(request, "console/simulator.html", _context(request, channel))


@require_POST
@staff_required
def simulator_customer(request: HttpRequest) -> HttpResponse:
    """Be another customer: a number typed in, one picked from the list, or a new random one."""
    if request.POST.get("new"):
        request.session[SESSION_WA_ID] = _random_number()
        request.session[SESSION_NAME] = _("Test customer")
        return redirect("console:simulator")
    form = CustomerForm(request.POST)
    if not form.is_valid():
        channel = sandbox_channel_get()
        context = _context(request, channel)
        context["customer_form"] = form
        return render(request, "console/simulator.html", context, status=400)
    request.session[SESSION_WA_ID] = form.cleaned_data["number"]
    request.session[SESSION_NAME] = form.cleaned_data["name"]
    return redirect("console:simulator")


@require_POST
@staff_required
def simulator_send(request: HttpRequest) -> HttpResponse:
    channel = sandbox_channel_get()
    form = MessageForm(request.POST)
    error = ""
    if channel is None or not channel.is_active:
        error = _("The sandbox channel is missing or deactivated (see Channels in admin).")
    elif form.is_valid():
        customer, name = _identity(request)
        receipt = simulator_message_send(channel=channel, customer=customer, name=name, text=form.cleaned_data["text"])
        if receipt.status != 200:
            error = _("The webhook refused the message: %(detail)s") % {"detail": receipt.event.detail}
    else:
        error = _("Type a message first.")
    if not request.htmx:
        return redirect("console:simulator")
    context = _context(request, channel, error=error)
    return render(request, "console/simulator.html#phone_thread", context, status=200)


@require_GET
@never_cache
@staff_required
def simulator_poll(request: HttpRequest) -> HttpResponse:
    """204 while the thread's revision is the one the phone shows (one query); else the thread."""
    channel = sandbox_channel_get()
    if channel is None:
        return HttpResponse(status=204)
    customer, _name = _identity(request)
    try:
        shown = int(request.GET.get("rev", ""))
    except ValueError:
        shown = None
    revision = simulator_revision(channel=channel, customer=customer)
    if revision is not None and revision == shown or revision is None and shown == -1:
        return HttpResponse(status=204)
    return render(request, "console/simulator.html#phone_thread", _context(request, channel))


@require_POST
@staff_required
def simulator_acknowledge(request: HttpRequest) -> HttpResponse:
    """The phone displayed the bot's messages: report them delivered and read."""
    channel = sandbox_channel_get()
    if channel is None or not channel.is_active:
        return HttpResponse(status=204)
    customer, _name = _identity(request)
    shown = set(request.POST.getlist("wamid"))
    # Only this customer's messages, whatever the page posted.
    thread = simulator_thread(channel=channel, customer=customer)
    simulator_messages_acknowledge(channel=channel, customer=customer, wamids=[w for w in thread.unacknowledged if w in shown])
    return HttpResponse(status=204)


# In the console's namespace (see whatsbot/urls.py).
urlpatterns = [
    path("simulator/", simulator, name="simulator"),
    path("simulator/customer/", simulator_customer, name="simulator_customer"),
    path("simulator/send/", simulator_send, name="simulator_send"),
    path("simulator/poll/", simulator_poll, name="simulator_poll"),
    path("simulator/ack/", simulator_acknowledge, name="simulator_acknowledge"),
]
