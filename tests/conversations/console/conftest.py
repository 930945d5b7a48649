import pytest
from django.test import Client
from django.utils import timezone

from conversations.models import Author, Direction, MessageStatus
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from conversations.roles import ADMINS_GROUP, staff_member_create

PASSWORD = "correct-horse-battery"


@pytest.fixture
def agent(db):
    return UserFactory(username="anna", first_name="Anna", last_name="Bianchi")


@pytest.fixture
def other_agent(db):
    return UserFactory(username="bruno", first_name="Bruno", last_name="Verdi")


@pytest.fixture
def console_admin(db):
    """An admin as the project creates them: staff, in the "Admins" group."""
    return staff_member_create(username="carla", password=PASSWORD, first_name="Carla", role=ADMINS_GROUP)


@pytest.fixture
def customer_user(db):
    """Logged in, but not staff: not allowed in the console."""
    return UserFactory(username="outsider", is_staff=False)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def agent_client(agent):
    return client_for(agent)


@pytest.fixture
def conversation(db):
    conversation = ConversationFactory(
        profile__wa_id="393331234567", profile__profile_name="Giulia WhatsApp", profile__first_name="Giulia",
        profile__last_name="Russo", profile__company="Rossi Srl", profile__email="giulia@example.com",
        last_message_preview="Ciao, il mio ordine?", unread_count=2,
    )  # fmt: skip
    now = timezone.now()
    MessageFactory(conversation=conversation, text="Ciao, il mio ordine non è arrivato", created_at=now - timezone.timedelta(minutes=5))
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.BOT, text="Mi dai il numero d'ordine?",
        status=MessageStatus.DELIVERED, created_at=now - timezone.timedelta(minutes=4),
    )  # fmt: skip
    return conversation
