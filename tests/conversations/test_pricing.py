"""What WhatsApp charges for the messages we send: the `pricing` its statuses carry, kept on
the outbound message (the latest Meta stamped wins) and shown per message and per
conversation in the console, and in the admin's message list. Through the real webhook view."""

from __future__ import annotations

import copy
from datetime import datetime, timezone as dt_timezone

import pytest

from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

MARKETING_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"  # delivered, billable (the fixture)
SERVICE_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"  # read, free
MARKETING = {"billable": True, "pricing_model": "PMP", "type": "regular", "category": "marketing"}
SERVICE = {"billable": False, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
T = 1750030000  # the fixture's first status; the tests' statuses are stamped seconds after it


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=dt_timezone.utc)


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="anna"))
    return client


@pytest.fixture
def conversation(channel):
    return ConversationFactory(channel=channel, profile__wa_id="16505551234")


def _sent(conversation, wamid: str, **fields) -> Message:
    fields = {"type": "text", "status": MessageStatus.SENT, "author": Author.BOT, **fields}
    return MessageFactory(conversation=conversation, direction=Direction.OUTBOUND, wamid=wamid, status_rank=1, **fields)


@pytest.fixture
def report(pricing_example, post_webhook):
    """POST the fixture's statuses, or (`statuses`) these: (wamid, status, timestamp, pricing)."""

    def post(statuses: list[tuple[str, str, int, dict]] | None = None) -> None:
        payload = pricing_example("Statuses with pricing")
        value = payload["entry"][0]["changes"][0]["value"]
        if statuses is not None:
            model = value["statuses"][0]
            value["statuses"] = [
                {**copy.deepcopy(model), "id": wamid, "status": status, "timestamp": str(ts), "pricing": pricing}
                for wamid, status, ts, pricing in statuses
            ]
        assert post_webhook(payload).status_code == 200

    return post


def test_the_pricing_a_status_carries_is_kept_on_its_message(conversation, report):
    template = _sent(conversation, MARKETING_WAMID, type="template", author=Author.STAFF)
    reply = _sent(conversation, SERVICE_WAMID)
    revision = Conversation.objects.get(pk=conversation.pk).revision

    report()

    template.refresh_from_db()
    reply.refresh_from_db()
    assert (template.pricing, template.pricing_at, template.billable) == (MARKETING, _at(1750030000), True)
    assert (reply.pricing, reply.pricing_at, reply.billable) == (SERVICE, _at(1750030060), False)
    assert (template.status, reply.status) == ("delivered", "read")
    assert Conversation.objects.get(pk=conversation.pk).revision > revision  # the console redraws them


def test_the_latest_pricing_meta_stamped_wins_whatever_the_order_it_arrives_in(conversation, report):
    message = _sent(conversation, "wamid.p1")
    utility = {**MARKETING, "category": "utility"}

    report([("wamid.p1", "read", T + 300, SERVICE), ("wamid.p1", "sent", T + 100, MARKETING)])  # one POST, out of order
    message.refresh_from_db()
    assert (message.pricing, message.pricing_at) == (SERVICE, _at(T + 300))

    report([("wamid.p1", "delivered", T + 200, utility)])  # a late retry of an older status
    message.refresh_from_db()
    assert (message.pricing, message.pricing_at, message.status) == (SERVICE, _at(T + 300), "read")

    report([("wamid.p1", "read", T + 400, utility)])  # Meta re-priced it later: a status that moves nothing still counts
    message.refresh_from_db()
    assert (message.pricing, message.pricing_at, message.status) == (utility, _at(T + 400), "read")


def test_a_status_without_pricing_leaves_the_messages_pricing_alone(conversation, report):
    message = _sent(conversation, "wamid.p2")

    report([("wamid.p2", "delivered", T + 100, MARKETING), ("wamid.p2", "read", T + 200, {})])

    message.refresh_from_db()
    assert (message.pricing, message.pricing_at, message.status) == (MARKETING, _at(T + 100), "read")


def test_the_thread_marks_each_priced_message_and_sums_the_conversation_up_by_category(conversation, report, staff_client):
    template = _sent(conversation, MARKETING_WAMID, type="template", author=Author.STAFF)
    reply = _sent(conversation, SERVICE_WAMID)
    second_template = _sent(conversation, "wamid.p3", type="template", author=Author.STAFF)
    unpriced = _sent(conversation, "wamid.p4")
    report()
    report([("wamid.p3", "delivered", T + 100, MARKETING)])

    html = staff_client.get(f"/console/c/{conversation.pk}/").content.decode()

    def bubble(message: Message) -> str:
        start = html.index(f'id="msg-{message.pk}"')
        return html[start : html.find('<div class="msg-row', start)]

    assert 'data-billable="true"' in bubble(template) and 'data-billable="true"' in bubble(second_template)
    assert 'data-billable="false"' in bubble(reply)
    assert "data-billable" not in bubble(unpriced)
    summary = html[html.index('id="billing-summary"') :]
    summary = summary[: summary.index("</section>")]
    rows = [row.split("</tr>")[0] for row in summary.split('<tr data-category="')[1:]]
    assert [row.split('"')[0] for row in rows] == ["marketing", "service"]
    assert "<td>2</td><td class=\"billable\">2</td>" in rows[0] and "<td>1</td><td>0</td>" in rows[1]


def test_a_conversation_with_nothing_priced_says_so(conversation, staff_client):
    html = staff_client.get(f"/console/c/{conversation.pk}/").content.decode()

    summary = html[html.index('id="billing-summary"') :]
    assert "<table>" not in summary[: summary.index("</section>")]


def test_the_admin_message_list_shows_what_was_billable(conversation, report, admin_member_client):
    _sent(conversation, MARKETING_WAMID, type="template", author=Author.STAFF, text="Saldi di fine stagione")
    _sent(conversation, SERVICE_WAMID, text="Il suo ordine è partito")
    report()

    html = admin_member_client.get("/admin/conversations/message/?direction__exact=out").content.decode()

    rows = {row.split("</tr>")[0] for row in html.split("<tr")[1:]}
    [template_row] = [row for row in rows if "Saldi di fine stagione" in row]
    [reply_row] = [row for row in rows if "Il suo ordine" in row]
    assert "billable · Marketing" in template_row and "free · Service" in reply_row
