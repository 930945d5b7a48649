"""A customer who stopped marketing messages never receives a marketing template: the delivery
refuses it for good before Meta is called, and staff see why. Other templates, and marketing
after the customer resumed it, go out as usual. The fake Graph API is a real HTTP server on
loopback; the delivery has a database connection of its own, so the tests commit."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone, translation

from conversations.delivery import MARKETING_STOPPED
from conversations.models import Message, MessageStatus, MessageType
from conversations.services import outbound
from tests.conversations.factories import ConversationFactory, UserFactory

from .conftest import MESSAGES_PATH, deliver

pytestmark = pytest.mark.django_db(transaction=True)

SUMMER_SALE = {"name": "summer_sale", "language": {"code": "it"}, "category": "MARKETING", "components": []}
ORDER_SHIPPED = {"name": "order_shipped", "language": {"code": "it"}, "category": "UTILITY"}


def template_send(conversation, template: dict) -> Message:
    """A template stored for sending, with its category in its template payload."""
    return outbound.message_send(
        conversation=conversation, type=MessageType.TEMPLATE, text=template["name"], payload={"template": template}
    )


def templates_sent(graph_api) -> list[dict]:
    return [json.loads(r.get_data())["template"] for r, _ in graph_api.log if r.path == MESSAGES_PATH]


@pytest.fixture
def stopped(channel):
    """A conversation whose customer stopped marketing messages."""
    return ConversationFactory(
        channel=channel, profile__wa_id="16505551234", profile__marketing_messages="stop",
        profile__marketing_messages_at=timezone.now(),
    )  # fmt: skip


def test_a_marketing_template_to_a_customer_who_stopped_fails_for_good_and_never_reaches_meta(stopped, graph_api):
    message = template_send(stopped, SUMMER_SALE)

    assert deliver(message.pk) == "failed"

    assert graph_api.log == []
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.error_code == str(MARKETING_STOPPED) and message.attempts == 1
    # Stored as the msgid, translated where staff read it (conversations.texts).
    assert message.error_title == "The customer stopped marketing messages: a marketing template is not sent to them."
    assert deliver(message.pk) == "skipped"  # failed for good: no retry
    assert graph_api.log == []


def test_staff_see_why_it_was_not_sent(stopped, graph_api, client):
    message = template_send(stopped, SUMMER_SALE)
    deliver(message.pk)
    client.force_login(UserFactory(username="anna"))

    html = client.get(f"/console/c/{stopped.pk}/").content.decode()

    bubble = html[html.index(f'id="msg-{message.pk}"') :]
    failure = bubble[bubble.index('class="failure"') : bubble.index("</div>", bubble.index('class="failure"'))]
    with translation.override("it"):  # the console's default language
        reason = translation.gettext(Message.objects.get(pk=message.pk).error_title)
    assert reason != Message.objects.get(pk=message.pk).error_title and reason in failure and f"({MARKETING_STOPPED})" in failure


def test_a_utility_template_still_reaches_a_customer_who_stopped_marketing(stopped, graph):
    message = template_send(stopped, ORDER_SHIPPED)

    assert deliver(message.pk) == "sent"

    assert templates_sent(graph) == [{"name": "order_shipped", "language": {"code": "it"}}]  # the category stays ours


def test_a_marketing_template_goes_to_a_customer_who_never_stopped_or_resumed(channel, graph):
    never = ConversationFactory(channel=channel, profile__wa_id="393330000001")
    resumed = ConversationFactory(
        channel=channel, profile__wa_id="393330000002", profile__marketing_messages="resume",
        profile__marketing_messages_at=timezone.now(),
    )  # fmt: skip

    assert deliver(template_send(never, SUMMER_SALE).pk) == "sent"
    assert deliver(template_send(resumed, SUMMER_SALE).pk) == "sent"
    assert [t["name"] for t in templates_sent(graph)] == ["summer_sale", "summer_sale"]
