"""Factories of the conversations app's rows (and of staff users)."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from conversations.models import Author, Channel, Conversation, Direction, Message, MessageStatus, Provider

from tests.profiles.factories import ClientProfileFactory

APP_SECRET = "test-app-secret-0123456789"
ACCESS_TOKEN = "EAAtesttoken0123456789abcdefghijklmnop"
PHONE_NUMBER_ID = "106540352242922"  # the number in Meta's webhook examples


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"agent{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct-horse-battery")


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("phone_number_id",)

    name = "Test number"
    provider = Provider.META
    phone_number_id = PHONE_NUMBER_ID
    display_phone_number = "15550783881"
    business_account_id = "419561257915477"
    access_token = ACCESS_TOKEN
    app_secret = APP_SECRET
    verify_token = "verify-me"
    api_version = ""  # WHATSAPP_API_VERSION


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    channel = factory.SubFactory(ChannelFactory)
    profile = factory.SubFactory(ClientProfileFactory)
    last_inbound_at = factory.LazyFunction(timezone.now)
    last_message_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    direction = Direction.INBOUND
    author = Author.CUSTOMER
    type = "text"
    text = factory.Faker("sentence")
    wamid = factory.Sequence(lambda n: f"wamid.test{n}")
    status = MessageStatus.RECEIVED
