"""A customer's choices about marketing messages (Meta's `user_preferences` webhook), through
the real webhook view: recorded on the customer with their time, the latest choice winning
whatever order Meta delivers them in, every choice kept once in the customer's history."""

from __future__ import annotations

import copy
from datetime import datetime, timezone as dt_timezone

import pytest
from django.utils import formats, timezone

from conversations.models import Conversation
from profiles.models import ClientProfile, ProfilePreferenceChange
from tests.conversations.factories import ConversationFactory, UserFactory
from tests.profiles.factories import ClientProfileFactory
from webhooks.models import Outcome, WebhookEvent

pytestmark = pytest.mark.django_db

CUSTOMER = "16505551234"  # the customer of Meta's example
BSUID = "US.13491208655302741918"
RESUMED_AT = 1731705721  # Meta's example
STOP_DETAIL = "User requested to stop marketing messages"


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=dt_timezone.utc)


@pytest.fixture
def choose(channel, preference_example, post_webhook):
    """POST one user_preferences delivery, shaped as Meta's example, with these choices:
    (value, timestamp) pairs, for the customer by phone number or (`user_id`) by BSUID alone,
    to the test channel's number or (`phone_number_id`) another."""

    def post(*choices: tuple[str, int], user_id: str = "", phone_number_id: str = "") -> WebhookEvent:
        payload = preference_example("Resume marketing messages")
        value = payload["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = phone_number_id or value["metadata"]["phone_number_id"]
        [example] = value["user_preferences"]
        if user_id:
            value["contacts"] = [{"user_id": user_id}]
            example = {k: v for k, v in example.items() if k != "wa_id"} | {"user_id": user_id}
        value["user_preferences"] = [
            {**copy.deepcopy(example), "value": choice, "timestamp": ts}
            | ({"detail": STOP_DETAIL} if choice == "stop" else {})
            for choice, ts in choices
        ]
        assert post_webhook(payload).status_code == 200
        return WebhookEvent.objects.order_by("-pk").first()

    return post


def test_metas_example_is_recorded_on_the_customer_with_its_time(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    event = choose(("resume", RESUMED_AT))

    profile.refresh_from_db()
    assert (profile.marketing_messages, profile.marketing_messages_at) == ("resume", _at(RESUMED_AT))
    assert not profile.marketing_stopped
    [change] = profile.preference_changes.all()
    assert (change.category, change.value, change.at) == ("marketing_messages", "resume", _at(RESUMED_AT))
    assert change.detail == "User requested to resume marketing messages"
    assert event.outcome == Outcome.PROCESSED and "1 preference(s)" in event.detail


def test_a_stop_after_a_resume_stops_marketing(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    choose(("resume", RESUMED_AT))
    choose(("stop", RESUMED_AT + 60))

    profile.refresh_from_db()
    assert profile.marketing_stopped and profile.marketing_messages_at == _at(RESUMED_AT + 60)
    assert list(profile.preference_changes.order_by("at").values_list("value", flat=True)) == ["resume", "stop"]


def test_an_older_choice_delivered_late_never_overrides_a_newer_one(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    choose(("stop", RESUMED_AT + 60))
    choose(("resume", RESUMED_AT))  # Meta's retry of an earlier delivery

    profile.refresh_from_db()
    assert profile.marketing_stopped and profile.marketing_messages_at == _at(RESUMED_AT + 60)
    assert profile.preference_changes.count() == 2  # both kept in the history


def test_in_one_delivery_the_latest_choice_wins_whatever_its_place(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    choose(("resume", RESUMED_AT + 120), ("stop", RESUMED_AT + 60))

    profile.refresh_from_db()
    assert profile.marketing_messages == "resume" and profile.marketing_messages_at == _at(RESUMED_AT + 120)


def test_two_choices_of_the_same_second_leave_marketing_stopped(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    choose(("stop", RESUMED_AT))
    choose(("resume", RESUMED_AT))

    profile.refresh_from_db()
    assert profile.marketing_stopped


def test_a_redelivered_choice_is_kept_once(choose):
    profile = ClientProfileFactory(wa_id=CUSTOMER)

    choose(("stop", RESUMED_AT))
    choose(("stop", RESUMED_AT))

    assert ProfilePreferenceChange.objects.filter(profile=profile).count() == 1


def test_a_customer_known_by_bsuid_alone_is_found_by_it(choose):
    profile = ClientProfileFactory(wa_id="", user_id=BSUID, key=BSUID)

    choose(("stop", RESUMED_AT), user_id=BSUID)

    profile.refresh_from_db()
    assert profile.marketing_stopped
    assert ClientProfile.objects.count() == 1


def test_a_customer_never_seen_gets_a_profile_and_no_conversation_and_their_first_message_finds_it(
    choose, meta_example, post_webhook
):
    choose(("stop", RESUMED_AT))

    profile = ClientProfile.objects.get(wa_id=CUSTOMER)
    assert profile.marketing_stopped and profile.first_contact_at is None
    assert Conversation.objects.count() == 0

    assert post_webhook(meta_example("Text Message")).status_code == 200  # from the same number

    assert ClientProfile.objects.get().pk == profile.pk
    conversation = Conversation.objects.get()
    assert conversation.profile_id == profile.pk and conversation.profile.marketing_stopped


def test_a_preference_for_a_number_with_no_active_channel_is_not_stored(choose):
    choose(("stop", RESUMED_AT), phone_number_id="999999999999999")

    assert ClientProfile.objects.count() == 0 and ProfilePreferenceChange.objects.count() == 0
    assert WebhookEvent.objects.get().outcome == Outcome.UNKNOWN_CHANNEL


def test_the_consoles_profile_panel_shows_the_choice_its_time_and_the_history(choose, client):
    conversation = ConversationFactory(profile__wa_id=CUSTOMER)
    client.force_login(UserFactory(username="anna"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"

    before = client.get(f"/console/c/{conversation.pk}/").content.decode()
    choose(("resume", RESUMED_AT))
    choose(("stop", RESUMED_AT + 60))
    after = client.get(f"/console/c/{conversation.pk}/").content.decode()

    assert 'data-marketing="unknown"' in before and "has not stopped marketing messages" in before
    panel = after[after.index('id="marketing"') :]
    panel = panel[: panel.index("</section>")]
    stopped_at = formats.date_format(timezone.localtime(_at(RESUMED_AT + 60)), "SHORT_DATETIME_FORMAT")
    assert 'data-marketing="stop"' in panel and f"Stopped on {stopped_at}" in panel
    assert panel.index("Stopped</li>") < panel.index("Resumed</li>")  # the history, newest first
