"""Factories of the profiles app's rows, and of the values the extraction hands them."""

import factory

from profiles.models import ClientProfile, Confidence, ExtractedValue


class ClientProfileFactory(factory.django.DjangoModelFactory):
    """A customer as the webhook first stores it: a phone number and profile name, nothing
    collected yet (collected values go through `profiles.services`, with provenance).
    `username_only=True`: one Meta knows by its BSUID and username, without a number."""

    class Meta:
        model = ClientProfile
        django_get_or_create = ("key",)

    class Params:
        username_only = factory.Trait(
            wa_id="",
            user_id=factory.Sequence(lambda n: f"IT.{13491208655302741918 + n}"),
            username=factory.Sequence(lambda n: f"@cliente.{n}"),
        )

    wa_id = factory.Sequence(lambda n: f"39333{n:07d}")
    user_id = ""
    username = ""
    key = factory.LazyAttribute(lambda p: p.user_id or p.wa_id)
    profile_name = factory.Faker("name")


def stated(value: str) -> ExtractedValue:
    """A value the customer said outright."""
    return ExtractedValue(value, Confidence.STATED)


def guessed(value: str) -> ExtractedValue:
    """A value the extraction only guessed: it fills an empty field, never replaces one."""
    return ExtractedValue(value, Confidence.GUESSED)
