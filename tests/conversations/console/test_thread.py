"""The thread: bubbles, media, ticks, failures, older pages, and the cheap live poll."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from heroicons.templatetags.heroicons import heroicon_micro

from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

TARGET_WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"  # what Meta's reaction example reacts to


@pytest.fixture
def send_example(channel, post_webhook, meta_example):
    counter = iter(range(1000))

    def send(name: str, **changes) -> Message:
        payload = meta_example(name)
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        message["id"] = changes.pop("wamid", f"wamid.example-{next(counter)}")
        message.update(changes)
        assert post_webhook(payload).status_code == 200
        return Message.objects.get(wamid=message["id"])

    return send


def thread_html(client, conversation) -> str:
    response = client.get(f"/console/c/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def bubble(html: str, message: Message) -> str:
    """The HTML of one message row."""
    start = html.rindex('<div class="msg-row', 0, html.index(f'id="msg-{message.pk}"'))
    end = html.find('<div class="msg-row', start + 10)
    return html[start : end if end != -1 else None]


def test_customer_bubbles_are_left_and_bot_and_staff_bubbles_right_and_distinct(agent_client, conversation, agent):
    staff = MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, sent_by=agent,
        text="Ci penso io", status=MessageStatus.READ,
    )  # fmt: skip
    html = thread_html(agent_client, conversation)
    inbound, bot = conversation.messages.order_by("pk")[:2]
    assert "dir-in author-customer" in bubble(html, inbound)
    assert "dir-out author-bot" in bubble(html, bot) and '<div class="sender"><svg' in bubble(html, bot)
    assert "dir-out author-staff" in bubble(html, staff) and "Anna Bianchi" in bubble(html, staff)


def test_ticks_show_pending_sent_delivered_read_and_a_failure_says_why(agent_client, conversation):
    def out(status, **extra):
        return MessageFactory(conversation=conversation, direction=Direction.OUTBOUND, author=Author.BOT, status=status, **extra)

    pending, sent, delivered, read = (out(s) for s in ("pending", "sent", "delivered", "read"))
    failed = out("failed", error_code="131047", error_title="Re-engagement message", error_detail="More than 24 hours have passed")
    html = thread_html(agent_client, conversation)
    assert 'data-status="pending"' in bubble(html, pending)
    assert 'data-status="sent"' in bubble(html, sent)
    assert 'data-status="delivered"' in bubble(html, delivered)
    assert 'data-status="read"' in bubble(html, read)
    assert "Re-engagement message (131047)" in bubble(html, failed)
    assert "More than 24 hours have passed" in bubble(html, failed)


def test_day_separators_split_the_thread_by_day(agent_client):
    conversation = ConversationFactory()
    now = timezone.now()
    MessageFactory(conversation=conversation, created_at=now - timezone.timedelta(days=3))
    MessageFactory(conversation=conversation, created_at=now - timezone.timedelta(days=3, minutes=-1))
    MessageFactory(conversation=conversation, created_at=now)
    html = thread_html(agent_client, conversation)
    assert html.count('class="day"') == 2


def test_media_messages_say_what_they_are(agent_client, send_example):
    image = send_example("Image Message")
    location = send_example("Location Message")
    contacts = send_example("Contact Sharing Message")
    voice = MessageFactory(conversation=image.conversation, type="audio", text="", media={"id": "1", "voice": True})
    document = MessageFactory(conversation=image.conversation, type="document", text="", media={"filename": "fattura-42.pdf"})
    html = thread_html(agent_client, image.conversation)
    assert heroicon_micro("camera") in bubble(html, image) and "Taj Mahal" in bubble(html, image)
    assert "https://www.openstreetmap.org/?mlat=37.442215&amp;mlon=-122.161659" in bubble(html, location)
    assert "Philz Coffee" in bubble(html, location)
    assert "Lucía Gómez" in bubble(html, contacts) and "+1 (983) 555-2319" in bubble(html, contacts)
    assert heroicon_micro("microphone") in bubble(html, voice)
    assert "fattura-42.pdf" in bubble(html, document)


def test_a_reaction_shows_on_the_message_it_reacts_to_not_as_a_bubble(agent_client, send_example):
    target = send_example("Text Message", wamid=TARGET_WAMID)
    reaction = send_example("Reaction Message")
    html = thread_html(agent_client, target.conversation)
    assert f'id="msg-{reaction.pk}"' not in html
    assert '<div class="reactions"' in bubble(html, target) and "👍" in bubble(html, target)


def test_older_messages_load_on_scroll_a_page_at_a_time(agent_client):
    conversation = ConversationFactory()
    messages = [MessageFactory(conversation=conversation, text=f"numero {i}") for i in range(95)]
    html = thread_html(agent_client, conversation)
    assert f'id="msg-{messages[-1].pk}"' in html and f'id="msg-{messages[54].pk}"' not in html
    older_url = re.search(r'hx-get="([^"]+/older/\?before=\d+)"', html).group(1)
    older = agent_client.get(older_url, HTTP_HX_REQUEST="true").content.decode()
    ids = [int(x) for x in re.findall(r'id="msg-(\d+)"', older)]
    assert ids == [m.pk for m in messages[15:55]]
    assert "/older/?before=%d" % messages[15].pk in older


def test_opening_a_thread_marks_it_read_for_staff(agent_client, conversation):
    assert conversation.unread_count == 2
    thread_html(agent_client, conversation)
    assert Conversation.objects.get(pk=conversation.pk).unread_count == 0


def test_a_thread_opened_from_the_list_is_just_the_thread_pane(agent_client, conversation):
    html = agent_client.get(f"/console/c/{conversation.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html and 'id="thread"' in html and 'id="side-panel"' in html


def poll_url(html: str) -> str:
    return re.search(r'id="thread-poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")


def test_a_thread_poll_with_no_change_is_one_query_by_primary_key_and_an_empty_204(agent_client, conversation):
    url = poll_url(thread_html(agent_client, conversation))
    agent_client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = agent_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response.content == b""
    own = [q["sql"] for q in queries if "django_session" not in q["sql"] and "auth_user" not in q["sql"]]
    # Besides the session and the user every logged-in request loads: exactly one query.
    assert len(queries) == 3 and len(own) == 1
    assert f'"conversations_conversation"."id" = {conversation.pk}' in own[0] and '"revision" >' in own[0]


def test_a_new_customer_message_comes_with_the_next_poll(agent_client, conversation, send_example):
    conversation.profile.wa_id = "16505551234"
    conversation.profile.save()
    url = poll_url(thread_html(agent_client, conversation))
    message = send_example("Text Message")
    assert message.conversation_id == conversation.pk
    response = agent_client.get(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'hx-swap-oob="beforeend:#messages"' in html and "Does it come in another color?" in html
    assert 'id="thread-header" hx-swap-oob="true"' in html
    # The next poll starts after it, at the new revision.
    conversation.refresh_from_db()
    assert f"rev={conversation.revision}" in poll_url(html) and f"after={message.pk}" in poll_url(html)
    assert agent_client.get(poll_url(html)).status_code == 204


def test_a_tick_that_moves_is_redrawn_by_the_poll(agent_client, conversation):
    bot = conversation.messages.get(author=Author.BOT)
    url = poll_url(thread_html(agent_client, conversation))
    Message.objects.filter(pk=bot.pk).update(status=MessageStatus.READ)
    Conversation.objects.filter(pk=conversation.pk).update(revision=conversation.revision + 1)
    html = agent_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    redrawn = html[html.index(f'id="msg-{bot.pk}"') :]
    assert 'hx-swap-oob="true"' in redrawn[:80] and 'data-status="read"' in redrawn


def test_the_thread_page_loads_the_conversation_list_with_a_second_request(agent_client, conversation):
    other = ConversationFactory(profile__first_name="Someone", profile__last_name="Else")
    html = thread_html(agent_client, conversation)
    assert 'id="thread-header"' in html
    # No rows on the thread page itself: a placeholder that fetches them, and a link without JavaScript.
    assert f'id="conv-{other.pk}"' not in html
    assert 'hx-get="/console/list/?q=&amp;filter=all" hx-trigger="load"' in html
    assert 'class="list-link" href="/console/?q=&amp;filter=all"' in html
    rows = agent_client.get("/console/list/?q=&filter=all", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="conv-{other.pk}"' in rows and f'href="/console/c/{conversation.pk}/"' in rows


def test_reading_a_thread_with_nothing_unread_writes_nothing(agent_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(unread_count=0)
    with CaptureQueriesContext(connection) as queries:
        thread_html(agent_client, conversation)
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]


def test_a_customer_without_a_number_is_shown_by_its_username_in_the_header_and_the_panel(agent_client):
    conversation = ConversationFactory(profile__username_only=True, profile__username="@giulia.r", profile__profile_name="Giulia")
    MessageFactory(conversation=conversation, text="Ciao")

    html = thread_html(agent_client, conversation)

    start = html.index('id="thread-header"')
    header = html[start : html.index("</header>", start)]
    assert '<span class="who-sub">@giulia.r · ' in header
    panel = html[html.index('class="contact-card"') :]
    assert '<p class="muted">@giulia.r</p>' in panel[: panel.index("</section>")]
    assert "+<" not in html and "+ ·" not in html
