import pytest

from conversations.models import Channel
from tests.conversations.factories import ACCESS_TOKEN, APP_SECRET

pytestmark = pytest.mark.django_db

URL = "/admin/conversations/channel/{}/change/"


def _form_data(channel: Channel, **overrides) -> dict:
    data = {
        "name": channel.name,
        "provider": channel.provider,
        "is_active": "on",
        "phone_number_id": channel.phone_number_id,
        "display_phone_number": channel.display_phone_number,
        "business_account_id": channel.business_account_id,
        "api_version": channel.api_version,
        "access_token": "",
        "app_secret": "",
        "verify_token": "",
        # The business hours' inlines, empty.
        **{f"{prefix}-{name}": value for prefix in ("opening_hours", "closed_days")
           for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))},
    }  # fmt: skip
    data.update(overrides)
    return data


def test_the_change_form_never_renders_a_stored_secret(admin_member_client, channel):
    response = admin_member_client.get(URL.format(channel.pk))

    html = response.content.decode()
    assert response.status_code == 200
    for secret in (ACCESS_TOKEN, APP_SECRET, channel.verify_token):
        assert secret not in html
    assert 'type="password"' in html
    assert "leave blank to keep it" in html


def test_the_channel_list_says_which_secrets_are_set_but_not_what_they_are(admin_member_client, channel):
    html = admin_member_client.get("/admin/conversations/channel/").content.decode()

    assert "access token ✓" in html
    assert ACCESS_TOKEN not in html and APP_SECRET not in html


def test_leaving_the_secret_fields_blank_keeps_the_stored_values(admin_member_client, channel):
    response = admin_member_client.post(URL.format(channel.pk), _form_data(channel, name="Renamed"))

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Renamed"
    assert (channel.access_token, channel.app_secret, channel.verify_token) == (ACCESS_TOKEN, APP_SECRET, "verify-me")


def test_typing_a_secret_replaces_it_and_ticking_clear_erases_one(admin_member_client, channel):
    response = admin_member_client.post(
        URL.format(channel.pk), _form_data(channel, app_secret="  new-secret  ", clear_secrets=["verify_token"])
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.app_secret == "new-secret"
    assert channel.verify_token == ""
    assert channel.access_token == ACCESS_TOKEN


def test_a_form_sent_back_with_an_error_does_not_echo_the_typed_secret(admin_member_client, channel):
    response = admin_member_client.post(URL.format(channel.pk), _form_data(channel, name="", access_token="typed-token-xyz"))

    assert response.status_code == 200  # redisplayed with "This field is required."
    assert "typed-token-xyz" not in response.content.decode()
    channel.refresh_from_db()
    assert channel.access_token == ACCESS_TOKEN


def test_the_change_history_names_the_changed_secret_without_its_value(admin_member_client, channel):
    admin_member_client.post(URL.format(channel.pk), _form_data(channel, access_token="brand-new-token"))

    html = admin_member_client.get(f"/admin/conversations/channel/{channel.pk}/history/").content.decode()
    assert "brand-new-token" not in html
    assert "access token" in html.lower()


def test_business_hours_are_edited_with_the_channel_and_checked(admin_member_client, channel):
    from datetime import date, time

    hours = {
        "time_zone": "Europe/Rome", "opening_hours-TOTAL_FORMS": "2", "opening_hours-0-weekday": "0",
        "opening_hours-0-opens": "09:00", "opening_hours-0-closes": "13:00", "opening_hours-1-weekday": "0",
        "opening_hours-1-opens": "14:00", "opening_hours-1-closes": "00:00", "closed_days-TOTAL_FORMS": "1",
        "closed_days-0-date": "2026-12-08", "closed_days-0-name": "Immacolata",
    }  # fmt: skip
    response = admin_member_client.post(URL.format(channel.pk), _form_data(channel, **hours))

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.time_zone == "Europe/Rome"
    assert list(channel.opening_hours.values_list("weekday", "opens", "closes")) == [(0, time(9), time(13)), (0, time(14), time(0))]
    assert list(channel.closed_days.values_list("date", flat=True)) == [date(2026, 12, 8)]

    bad = {**hours, "time_zone": "Mars/Olympus", "opening_hours-0-closes": "08:00"}
    response = admin_member_client.post(URL.format(channel.pk), _form_data(channel, **bad))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Mars/Olympus" in html and "a range ends on its own day" in html
    channel.refresh_from_db()
    assert channel.opening_hours.count() == 2 and channel.time_zone == "Europe/Rome"  # nothing half-saved
