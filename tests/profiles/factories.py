"""Factories of the profiles app's rows, and of the values the extraction hands them."""

import factory

from profiles.models import ClientProfile, Confidence, ExtractedValue


class ClientProfileFactory(factory.django.DjangoModelFactory):
    """A customer as the webhook first stores it: a WhatsApp id and profile name, nothing
    collected yet (collected values go through `profiles.services`, with provenance)."""

    class Meta:
        model = ClientProfile
        django_get_or_create = ("wa_id",)

    wa_id = factory.Sequence(lambda n: f"39333{n:07d}")
    profile_name = factory.Faker("name")


def stated(value: str) -> ExtractedValue:
    """A value the customer said outright."""
    return ExtractedValue(value, Confidence.STATED)


def guessed(value: str) -> ExtractedValue:
    """A value the extraction only guessed: it fills an empty field, never replaces one."""
    return ExtractedValue(value, Confidence.GUESSED)
