"""Who may replace what in a profile, and what the provenance says about each value.

A staff member's value is never replaced by the AI; the AI's stated value replaces any
other; a guess only fills an empty field; order numbers are appended to, never replaced.
"""

import pytest

from profiles.models import ClientProfile, Confidence, ExtractedValue, FieldSource, ProfileFieldChange
from profiles.services import profile_field_set, profile_language_set, profile_update_from_extraction

from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from .factories import ClientProfileFactory, guessed, stated

pytestmark = pytest.mark.django_db

FIELDS = ["first_name", "last_name", "company", "email", "order_number"]


def extracted(profile: ClientProfile, values: dict, *, text: str = "…", fields: list[str] = FIELDS) -> list:
    """What the agent does with one customer message's extracted values."""
    conversation = profile.conversations.first() or ConversationFactory(profile=profile)
    message = MessageFactory(conversation=conversation, text=text)
    return profile_update_from_extraction(profile=profile, values=values, fields=fields, message=message)


def stored(profile: ClientProfile) -> ClientProfile:
    return ClientProfile.objects.get(pk=profile.pk)


def test_the_ai_fills_an_empty_field_and_says_from_which_message_and_how_surely():
    profile = ClientProfileFactory()
    message = MessageFactory(conversation=ConversationFactory(profile=profile), text="mi chiamo giulia")

    (change,) = profile_update_from_extraction(profile=profile, values={"first_name": stated("giulia")}, fields=FIELDS, message=message)

    assert (change.field, change.old, change.new) == ("first_name", "", "Giulia")
    entry = stored(profile).provenance["first_name"]
    assert (entry["source"], entry["confidence"], entry["message_id"], entry["user_id"]) == ("ai", "stated", message.pk, None)
    assert entry["at"]
    assert profile.first_name == "Giulia"  # the caller's instance is kept current
    history = ProfileFieldChange.objects.get(profile=profile)
    assert (history.field, history.old_value, history.new_value, history.source, history.message_id) == (
        "first_name", "", "Giulia", FieldSource.AI, message.pk,
    )  # fmt: skip


def test_a_plain_string_from_the_model_counts_as_stated():
    profile = ClientProfileFactory()
    extracted(profile, {"first_name": "Giulia", "last_name": "Bianchi"})

    extracted(profile, {"first_name": guessed("I"), "last_name": guessed("Vostri")})

    profile = stored(profile)
    assert (profile.first_name, profile.last_name) == ("Giulia", "Bianchi")
    assert profile.provenance["first_name"]["confidence"] == Confidence.STATED


def test_a_guess_never_replaces_a_name_the_ai_set_earlier():
    # The issue: "quali sono i vostri orari?" replaced "Giulia Bianchi" with "I Vostri".
    profile = ClientProfileFactory()
    first = extracted(profile, {"first_name": stated("Giulia"), "last_name": stated("Bianchi")}, text="mi chiamo Giulia Bianchi")
    assert len(first) == 2

    assert extracted(profile, {"first_name": guessed("i"), "last_name": guessed("vostri")}, text="quali sono i vostri orari?") == []

    profile = stored(profile)
    assert (profile.first_name, profile.last_name) == ("Giulia", "Bianchi")
    assert profile.field_changes.count() == 2


def test_a_guess_fills_an_empty_field_and_is_recorded_as_a_guess():
    profile = ClientProfileFactory()

    (change,) = extracted(profile, {"first_name": guessed("Marta")}, text="Sono Marta")

    assert change.new == "Marta"
    assert stored(profile).provenance["first_name"]["confidence"] == "guessed"


def test_a_guess_never_replaces_an_earlier_guess_either():
    profile = ClientProfileFactory()
    extracted(profile, {"first_name": guessed("Marta")})

    assert extracted(profile, {"first_name": guessed("Lieto")}) == []
    assert stored(profile).first_name == "Marta"


def test_a_stated_value_replaces_a_guess_and_an_earlier_stated_value():
    profile = ClientProfileFactory()
    extracted(profile, {"first_name": guessed("Marta")})

    (change,) = extracted(profile, {"first_name": stated("Martina")})
    assert (change.old, change.new) == ("Marta", "Martina")
    assert stored(profile).provenance["first_name"]["confidence"] == "stated"

    extracted(profile, {"email": stated("old@example.com")})
    (correction,) = extracted(profile, {"email": stated("new@example.com")})
    assert (correction.old, correction.new) == ("old@example.com", "new@example.com")


def test_an_ai_value_stored_before_confidence_was_recorded_is_not_replaced_by_a_guess():
    profile = ClientProfileFactory(
        first_name="Giulia", provenance={"first_name": {"source": "ai", "message_id": None, "user_id": None, "user": "", "at": ""}}
    )

    assert extracted(profile, {"first_name": guessed("Vostri")}) == []
    assert extracted(profile, {"first_name": stated("Giuliana")})[0].new == "Giuliana"


@pytest.mark.parametrize("confidence", [Confidence.STATED, Confidence.GUESSED])
def test_a_staff_value_is_never_replaced_by_the_ai_however_sure(confidence):
    profile = ClientProfileFactory()
    staff = UserFactory(username="anna")
    profile_field_set(profile=profile, field="company", value="Ortofrutta Sud", source=FieldSource.STAFF, user=staff)

    assert extracted(profile, {"company": ExtractedValue("Altro Srl", confidence)}) == []

    profile = stored(profile)
    assert profile.company == "Ortofrutta Sud"
    entry = profile.provenance["company"]
    assert (entry["source"], entry["user_id"], entry["user"], entry["message_id"]) == ("staff", staff.pk, "anna", None)
    assert "confidence" not in entry  # a staff member's value is not a reading of a text


def test_a_staff_member_replaces_any_ai_value():
    profile = ClientProfileFactory()
    extracted(profile, {"email": stated("wrong@example.com")})

    change = profile_field_set(profile=profile, field="email", value="Right@Example.com", source=FieldSource.STAFF, user=UserFactory())

    assert (change.old, change.new) == ("wrong@example.com", "right@example.com")
    assert stored(profile).source_of("email") == FieldSource.STAFF


def test_the_rule_is_decided_on_the_stored_row_not_the_callers_copy():
    profile = ClientProfileFactory()
    stale = ClientProfile.objects.get(pk=profile.pk)  # read before the name arrived
    extracted(profile, {"first_name": stated("Giulia")})

    assert extracted(stale, {"first_name": guessed("Vostri")}) == []
    assert stored(profile).first_name == "Giulia"


def test_only_the_configured_fields_are_taken_and_an_invalid_value_is_dropped():
    profile = ClientProfileFactory()

    changes = extracted(
        profile,
        {"first_name": stated("Giulia"), "email": stated("giulia at acme"), "company": "Acme", "language": "it", "vat_number": None},
        fields=["first_name", "email"],
    )

    assert [c.field for c in changes] == ["first_name"]
    profile = stored(profile)
    assert (profile.email, profile.company) == ("", "")
    assert set(profile.provenance) == {"first_name"}


def test_order_numbers_are_appended_never_replaced_and_never_repeated():
    profile = ClientProfileFactory()
    extracted(profile, {"order_number": stated("ab-1001")})
    second = MessageFactory(conversation=profile.conversations.first(), text="anche l'ordine AB-1002")

    (change,) = profile_update_from_extraction(profile=profile, values={"order_number": "AB-1002"}, fields=FIELDS, message=second)
    assert extracted(profile, {"order_number": stated("AB-1001")}) == []

    profile = stored(profile)
    assert profile.order_numbers == ["AB-1001", "AB-1002"] and profile.order_number == "AB-1002"
    assert (change.old, change.new) == ("AB-1001", "AB-1002")
    assert profile.provenance["order_number"]["message_id"] == second.pk  # the latest one's


def test_a_guessed_order_number_is_taken_only_when_none_is_known():
    profile = ClientProfileFactory()

    assert extracted(profile, {"order_number": guessed("AB-1001")})[0].new == "AB-1001"
    assert extracted(profile, {"order_number": guessed("AB-1002")}) == []
    assert stored(profile).order_numbers == ["AB-1001"]


def test_an_order_number_outside_the_channel_s_pattern_is_dropped():
    profile = ClientProfileFactory()

    changes = profile_update_from_extraction(
        profile=profile, values={"order_number": stated("AB-1001")}, fields=FIELDS, order_number_pattern=r"\d{6}"
    )

    assert changes == [] and stored(profile).order_numbers == []


def test_the_language_follows_the_customer_and_is_not_a_collected_field():
    profile = ClientProfileFactory()

    profile_language_set(profile=profile, language="IT")
    assert stored(profile).language == "it"
    profile_language_set(profile=profile, language="en")
    for junk in ("", "1x", "e"):
        profile_language_set(profile=profile, language=junk)

    profile = stored(profile)
    assert profile.language == "en"
    assert profile.provenance == {} and not profile.field_changes.exists()
