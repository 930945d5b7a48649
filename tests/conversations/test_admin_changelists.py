"""Every list page costs a fixed number of queries, however many rows it shows."""

import pytest
from django.utils import timezone

from conversations.models import ConversationNote, QuickReply, StatusUpdate
from profiles.services import profile_field_set
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

ROWS = 60


@pytest.fixture
def many_rows(channel, admin_member):
    staff = [UserFactory(username=f"staff{n}") for n in range(3)]
    for n in range(ROWS):
        conversation = ConversationFactory(channel=channel, assigned_to=staff[n % 3])
        message = MessageFactory(conversation=conversation, sent_by=staff[n % 3])
        ConversationNote.objects.create(conversation=conversation, author=staff[n % 3], text=f"note {n}")
        StatusUpdate.objects.create(wamid=message.wamid, status="delivered", timestamp=timezone.now())
        WebhookEvent.objects.create(channel=channel, body="{}", outcome="processed")
        QuickReply.objects.create(shortcut=f"reply{n}", title=f"Reply {n}", text="Hello")
        profile_field_set(profile=conversation.profile, field="email", value=f"c{n}@example.com", source="staff", user=staff[0])


@pytest.mark.parametrize(
    "url",
    [
        "/admin/conversations/channel/",
        "/admin/conversations/conversation/",
        "/admin/conversations/conversation/?owner__exact=bot&q=39333",
        "/admin/conversations/message/",
        "/admin/conversations/message/?direction__exact=in",
        "/admin/conversations/statusupdate/",
        "/admin/conversations/quickreply/",
        "/admin/conversations/conversationnote/",
        "/admin/profiles/clientprofile/",
        "/admin/profiles/clientprofile/?details=missing",
        "/admin/webhooks/webhookevent/",
        "/admin/auth/user/",
    ],
)
def test_a_changelist_with_many_rows_costs_a_bounded_number_of_queries(
    admin_member_client, many_rows, django_assert_max_num_queries, url
):
    # Session, user, permissions, count, rows, filters, date hierarchy: never one per row.
    with django_assert_max_num_queries(15):
        response = admin_member_client.get(url)

    assert response.status_code == 200


def test_a_conversation_page_shows_its_messages_read_only_with_a_bounded_number_of_queries(
    admin_member_client, channel, django_assert_max_num_queries
):
    conversation = ConversationFactory(channel=channel)
    staff = UserFactory(username="writer")
    for n in range(150):
        MessageFactory(conversation=conversation, text=f"message number {n}", sent_by=staff)

    with django_assert_max_num_queries(20):
        response = admin_member_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "message number 149" in html
    assert "message number 10<" not in html  # only the latest 100 inline
    assert 'name="messages-0-text"' not in html  # read-only: no inputs
    assert f"?conversation__id__exact={conversation.pk}" in html


def test_a_message_cannot_be_changed_or_added_in_admin(admin_member_client, channel):
    message = MessageFactory(conversation=ConversationFactory(channel=channel))

    assert admin_member_client.get("/admin/conversations/message/add/").status_code == 403
    response = admin_member_client.post(f"/admin/conversations/message/{message.pk}/change/", {"text": "rewritten"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.text != "rewritten"


def test_admin_search_finds_a_conversation_by_any_profile_field(admin_member_client, channel):
    wanted = ConversationFactory(channel=channel)
    profile_field_set(profile=wanted.profile, field="company", value="Ortofrutta Sud", source="staff")
    ConversationFactory(channel=channel)

    for term in ("ortofrutta", wanted.profile.wa_id):
        response = admin_member_client.get(f"/admin/conversations/conversation/?q={term}")
        assert list(response.context_data["cl"].result_list) == [wanted], term
    response = admin_member_client.get("/admin/profiles/clientprofile/?q=ortofrutta")
    assert list(response.context_data["cl"].result_list) == [wanted.profile]
