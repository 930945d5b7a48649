"""Every value is cleaned and checked for its field before it touches a profile."""

import pytest
from django.utils import translation

from profiles.services import FieldValueError, field_value_clean


@pytest.fixture(autouse=True)
def english():
    """The reasons are in the reader's language; these tests read the English ones."""
    with translation.override("en"):
        yield


def test_a_reason_is_in_the_readers_language():
    with translation.override("it"), pytest.raises(FieldValueError, match="non sembra un nome"):
        field_value_clean(field="first_name", value="R2D2")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("mario", "Mario"),
        ("  MARIO   ROSSI ", "Mario Rossi"),
        ("d'angelo", "D'Angelo"),
        ("o’brien", "O’Brien"),
        ("anne-marie", "Anne-Marie"),
        ("Maria De Luca", "Maria de Luca"),
        ("de luca", "De Luca"),
        ("ludwig VAN beethoven", "Ludwig van Beethoven"),
        ("seán", "Seán"),
    ],
)
def test_a_name_is_cased_as_names_are(value, expected):
    assert field_value_clean(field="first_name", value=value) == expected
    assert field_value_clean(field="last_name", value=value) == expected


@pytest.mark.parametrize("value", ["R2D2", "mario@acme.it", "#1", "<b>Mario</b>", "a_b", "x" * 121])
def test_a_name_with_digits_or_symbols_is_refused(value):
    with pytest.raises(FieldValueError, match="does not look like a name"):
        field_value_clean(field="first_name", value=value)


@pytest.mark.parametrize(
    "value, expected",
    [("Mario.Rossi@Acme.IT", "mario.rossi@acme.it"), ("<anna@example.org>.", "anna@example.org"), (" a@b.co ", "a@b.co")],
)
def test_an_email_is_lower_cased_without_the_punctuation_around_it(value, expected):
    assert field_value_clean(field="email", value=value) == expected


@pytest.mark.parametrize("value", ["mario at acme", "mario@", "@acme.it", "mario@acme"])
def test_an_invalid_email_is_refused(value):
    with pytest.raises(FieldValueError, match="not a valid email address"):
        field_value_clean(field="email", value=value)


def test_a_company_is_kept_as_written_up_to_255_characters():
    assert field_value_clean(field="company", value="  ACME   srl ") == "ACME srl"
    with pytest.raises(FieldValueError, match="too long"):
        field_value_clean(field="company", value="x" * 256)


@pytest.mark.parametrize("value, expected", [("ab-2024-17", "AB-2024-17"), ("2024-551.", "2024-551"), ("a/12#3", "A/12#3")])
def test_an_order_number_is_upper_cased_and_matches_the_default_pattern(value, expected):
    assert field_value_clean(field="order_number", value=value) == expected


@pytest.mark.parametrize("value", ["!!", "ab", "A 1234", "#A-1", "x" * 41])
def test_an_order_number_outside_the_default_pattern_is_refused(value):
    with pytest.raises(FieldValueError, match="not a valid order number"):
        field_value_clean(field="order_number", value=value)


def test_an_order_number_must_match_the_configured_pattern_whole():
    assert field_value_clean(field="order_number", value="123456", order_number_pattern=r"\d{6}") == "123456"
    with pytest.raises(FieldValueError):
        field_value_clean(field="order_number", value="AB-2024-17", order_number_pattern=r"\d{6}")
    with pytest.raises(FieldValueError):
        field_value_clean(field="order_number", value="1234567", order_number_pattern=r"\d{6}")


def test_an_admin_defined_field_is_kept_as_written_up_to_500_characters():
    assert field_value_clean(field="vat_number", value=" IT 01234567890 ") == "IT 01234567890"
    with pytest.raises(FieldValueError, match="too long"):
        field_value_clean(field="vat_number", value="x" * 501)


@pytest.mark.parametrize("field", ["first_name", "last_name", "company", "email", "order_number", "vat_number"])
@pytest.mark.parametrize("value", ["", "   ", None])
def test_a_blank_value_is_empty_for_every_field(field, value):
    assert field_value_clean(field=field, value=value) == ""
