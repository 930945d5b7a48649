"""The client profiles' admin: where each value came from, staff edits, the list's cost."""

import pytest
from django.utils import timezone

from profiles.models import Confidence, FieldSource, ProfilePreferenceChange
from profiles.services import profile_field_set
from tests.conftest import ADMIN_LIST_MAX_QUERIES
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.profiles.factories import ClientProfileFactory

pytestmark = pytest.mark.django_db


def change(client, profile, **fields):
    """Post the profile's change form: `fields`, every other editable field blank, no inline rows."""
    blank = {"first_name": "", "last_name": "", "company": "", "email": ""}
    inlines = {
        f"{prefix}-{count}": "0" for prefix in ("field_changes", "preference_changes") for count in ("TOTAL_FORMS", "INITIAL_FORMS")
    }
    return client.post(f"/admin/profiles/clientprofile/{profile.pk}/change/", {**blank, **fields, **inlines})


def test_the_profile_page_says_where_each_value_came_from(admin_member_client, channel, admin_member):
    conversation = ConversationFactory(channel=channel)
    profile = conversation.profile
    message = MessageFactory(conversation=conversation, text="sono Mario di Acme")
    profile_field_set(profile=profile, field="first_name", value="mario", source=FieldSource.AI, message=message)
    profile_field_set(profile=profile, field="company", value="Acme", source=FieldSource.STAFF, user=admin_member)

    html = admin_member_client.get(f"/admin/profiles/clientprofile/{profile.pk}/change/").content.decode()

    assert f'href="/admin/conversations/message/{message.pk}/change/"' in html
    assert f"from message #{message.pk}" in html
    assert "by alice-admin" in html
    assert "Mario" in html and "Acme" in html


def test_the_profile_page_says_which_value_was_only_a_guess(admin_member_client, channel):
    conversation = ConversationFactory(channel=channel)
    profile = conversation.profile
    message = MessageFactory(conversation=conversation, text="Sono Giulia, giulia@example.com")
    profile_field_set(profile=profile, field="first_name", value="Giulia", source=FieldSource.AI, message=message, confidence=Confidence.GUESSED)
    profile_field_set(profile=profile, field="email", value="giulia@example.com", source=FieldSource.AI, message=message)

    html = admin_member_client.get(f"/admin/profiles/clientprofile/{profile.pk}/change/").content.decode()

    assert "<td>Giulia</td><td>AI (guessed)</td>" in html
    assert "<td>giulia@example.com</td><td>AI</td>" in html


def test_an_admin_edit_is_a_staff_value_the_ai_will_not_overwrite(admin_member_client, admin_member):
    profile = ClientProfileFactory()

    response = change(admin_member_client, profile, first_name="anna", email="ANNA@Example.com")

    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.first_name, profile.email) == ("Anna", "anna@example.com")
    assert profile.source_of("first_name") == FieldSource.STAFF
    assert profile.provenance["email"]["user"] == "alice-admin"
    assert profile_field_set(profile=profile, field="first_name", value="Giulia", source=FieldSource.AI) is None
    assert profile.field_changes.count() == 2


def test_an_invalid_value_is_refused_with_the_reason(admin_member_client):
    profile = ClientProfileFactory()

    response = change(admin_member_client, profile, email="not an email")

    assert response.status_code == 200
    assert "email" in response.context_data["adminform"].form.errors
    profile.refresh_from_db()
    assert profile.email == ""


@pytest.mark.parametrize("url", ["/admin/profiles/clientprofile/", "/admin/profiles/clientprofile/?details=missing"])
def test_the_profile_list_with_many_rows_costs_a_bounded_number_of_queries(
    admin_member_client, admin_rows, django_assert_max_num_queries, url
):
    with django_assert_max_num_queries(ADMIN_LIST_MAX_QUERIES):
        response = admin_member_client.get(url)

    assert response.status_code == 200


def test_admin_search_finds_a_profile_by_any_field(admin_member_client, channel):
    wanted = ConversationFactory(channel=channel).profile
    profile_field_set(profile=wanted, field="company", value="Ortofrutta Sud", source="staff")
    ConversationFactory(channel=channel)

    response = admin_member_client.get("/admin/profiles/clientprofile/?q=ortofrutta")

    assert list(response.context_data["cl"].result_list) == [wanted]


def test_the_profile_page_and_list_show_the_customers_marketing_choices(admin_member_client):
    profile = ClientProfileFactory(marketing_messages="stop", marketing_messages_at=timezone.now())
    ProfilePreferenceChange.objects.create(
        profile=profile, category="marketing_messages", value="resume", at=timezone.now() - timezone.timedelta(days=3)
    )
    ProfilePreferenceChange.objects.create(
        profile=profile, category="marketing_messages", value="stop", detail="User requested to stop marketing messages",
        at=timezone.now(),
    )  # fmt: skip
    ClientProfileFactory()

    html = admin_member_client.get(f"/admin/profiles/clientprofile/{profile.pk}/change/").content.decode()
    stopped = admin_member_client.get("/admin/profiles/clientprofile/?marketing_messages__exact=stop").content.decode()

    latest = html.split("Marketing messages", 1)[1].split("</fieldset>")[0]
    assert '<div class="readonly">Stopped</div>' in latest
    history = html.split("History of marketing choices")[1]
    assert "User requested to stop marketing messages" in history
    assert history.index("Stopped") < history.index("Resumed")  # newest first
    assert f"/admin/profiles/clientprofile/{profile.pk}/change/" in stopped and stopped.count("/change/") == 1


def test_a_customer_without_a_number_is_listed_and_found_by_its_username(admin_member_client, channel):
    profile = {"profile__username_only": True, "profile__username": "@giulia.r", "profile__profile_name": ""}
    wanted = ConversationFactory(channel=channel, **profile).profile
    ConversationFactory(channel=channel, profile__username_only=True)

    listed = admin_member_client.get("/admin/profiles/clientprofile/").content.decode()
    found = admin_member_client.get("/admin/profiles/clientprofile/?q=@giulia.r")
    page = admin_member_client.get(f"/admin/profiles/clientprofile/{wanted.pk}/change/").content.decode()

    assert '<td class="field-handle">@giulia.r</td>' in listed
    assert list(found.context_data["cl"].result_list) == [wanted]
    assert wanted.user_id in page and "@giulia.r" in page
