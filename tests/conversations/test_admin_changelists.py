"""The conversations app's admin lists (and the staff list): a fixed number of queries however
many rows they show; messages are read-only; search reaches every profile field."""

import pytest

from profiles.services import profile_field_set
from tests.conftest import ADMIN_LIST_MAX_QUERIES
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


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
        "/admin/auth/user/",
    ],
)
def test_a_changelist_with_many_rows_costs_a_bounded_number_of_queries(
    admin_member_client, admin_rows, django_assert_max_num_queries, url
):
    with django_assert_max_num_queries(ADMIN_LIST_MAX_QUERIES):
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


def test_a_conversation_without_a_number_is_listed_and_found_by_its_username(admin_member_client, channel):
    wanted = ConversationFactory(channel=channel, profile__username_only=True, profile__username="@giulia.r")
    ConversationFactory(channel=channel, profile__username_only=True)

    listed = admin_member_client.get("/admin/conversations/conversation/").content.decode()
    page = admin_member_client.get(f"/admin/conversations/conversation/{wanted.pk}/change/").content.decode()

    assert '<td class="field-handle">@giulia.r</td>' in listed
    assert f"{wanted.profile.display_name}</a> (@giulia.r)" in page
    for term in ("giulia.r", "@giulia"):
        response = admin_member_client.get(f"/admin/conversations/conversation/?q={term}")
        assert list(response.context_data["cl"].result_list) == [wanted], term


def test_a_message_page_shows_its_stored_file_through_the_staff_only_view_and_its_transcript(admin_member_client, channel):
    from django.core.files.base import ContentFile

    from conversations.models import MediaFile, MediaState

    voice = MessageFactory(conversation=ConversationFactory(channel=channel), type="audio", transcript="Buongiorno, sono Mario")
    media = MediaFile(message=voice, state=MediaState.STORED, mime_type="audio/ogg", size=2048, filename="")
    media.file.save("audio.ogg", ContentFile(b"OggS" + bytes(60)), save=False)
    media.save()
    expired = MessageFactory(conversation=voice.conversation, type="image")
    MediaFile.objects.create(message=expired, state=MediaState.EXPIRED, error="WhatsApp no longer has this file")

    html = admin_member_client.get(f"/admin/conversations/message/{voice.pk}/change/").content.decode()
    assert f"/console/c/{voice.conversation_id}/media/{voice.pk}/" in html and "audio/ogg" in html and "2.0" in html
    assert "Buongiorno, sono Mario" in html
    html = admin_member_client.get(f"/admin/conversations/message/{expired.pk}/change/").content.decode()
    assert "WhatsApp no longer has this file" in html and "/media/" not in html.split("stored file")[-1][:300]
