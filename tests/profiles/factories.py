"""Factories of the profiles app's rows."""

import factory

from profiles.models import ClientProfile


class ClientProfileFactory(factory.django.DjangoModelFactory):
    """A customer as the webhook first stores it: a WhatsApp id and profile name, nothing
    collected yet (collected values go through `profiles.services`, with provenance)."""

    class Meta:
        model = ClientProfile
        django_get_or_create = ("wa_id",)

    wa_id = factory.Sequence(lambda n: f"39333{n:07d}")
    profile_name = factory.Faker("name")
