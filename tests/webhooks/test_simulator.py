"""The simulator (`webhooks.simulator`): the phone page's messages take the production path
(the signed webhook, ingest, the turn) and the bot's answers come back to it."""

import json

import pytest

from conversations.models import Author, Conversation, Direction, Message, MessageStatus, Provider
from conversations.services import outbound
from conversations.services.channels import SANDBOX_PHONE_ID, sandbox_channel_ensure
from integrations.meta.signature import sign
from tests.conversations.conftest import handle, reply
from tests.conversations.factories import ConversationFactory, UserFactory
from webhooks.models import Outcome, WebhookEvent
from webhooks.simulator import simulator_message_send, simulator_text_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(db):
    channel, _ = sandbox_channel_ensure()
    return channel


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="simona"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def _be(client, *, number="393401234567", name="Giulia Test"):
    return client.post("/console/simulator/customer/", {"number": number, "name": name})


def _send(client, text, **headers):
    return client.post("/console/simulator/send/", {"text": text}, **headers)


def _run_worker():
    """What the Celery worker does with the customer messages' tasks: the turn, then the
    debounced reply without waiting for the quiet period. The turn delivers the bot's
    answer itself, through the sandbox provider. (The turn has its own database
    connection: the tests that call this commit their rows.)"""
    for message in Message.objects.filter(direction=Direction.INBOUND, handled_at__isnull=True).order_by("pk"):
        handle(message.pk)
        if not Message.objects.get(pk=message.pk).handled_at:
            reply(message.pk)


def test_bootstrap_creates_the_sandbox_channel_with_its_own_secret_once(db):
    from django.core.management import call_command

    call_command("bootstrap", stdout=open("/dev/null", "w"))
    call_command("bootstrap", stdout=open("/dev/null", "w"))

    channel = Conversation._meta.get_field("channel").related_model.objects.get(phone_number_id=SANDBOX_PHONE_ID)
    assert channel.provider == Provider.SANDBOX
    assert len(channel.app_secret) >= 32


def test_a_message_typed_on_the_phone_goes_through_the_signed_webhook(staff_client, sandbox, django_capture_on_commit_callbacks):
    _be(staff_client)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _send(staff_client, "Ciao, vorrei sapere dove è il mio ordine", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "dove è il mio ordine" in response.content.decode()
    event = WebhookEvent.objects.get()
    assert event.signature_valid and event.outcome == Outcome.PROCESSED
    assert event.channel == sandbox
    assert json.loads(event.body)["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "sandbox"
    message = Message.objects.get()
    assert (message.direction, message.author, message.text) == (Direction.INBOUND, Author.CUSTOMER, "Ciao, vorrei sapere dove è il mio ordine")
    assert message.conversation.profile.wa_id == "393401234567"
    assert message.conversation.profile.profile_name == "Giulia Test"
    assert len(queued) == 1  # the worker's task, queued once the rows committed


def test_the_simulators_signed_body_is_accepted_by_the_real_webhook_url(client, sandbox):
    body = simulator_text_body(channel=sandbox, customer="393400000001", name="Via HTTP", text="hello")

    response = client.post(
        "/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=sign(body, sandbox.app_secret)
    )

    assert response.status_code == 200
    assert Message.objects.get().text == "hello"


def test_a_body_signed_with_another_secret_is_refused(client, sandbox):
    body = simulator_text_body(channel=sandbox, customer="393400000001", name="Forger", text="hello")

    response = client.post("/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=sign(body, "guess"))

    assert response.status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_bots_answer_comes_back_to_the_phone_and_is_reported_read(staff_client, sandbox, offline):
    _be(staff_client)
    _send(staff_client, "Buongiorno")
    poll = staff_client.get("/console/simulator/poll/?rev=-1")
    revision = int(poll.content.decode().split('data-revision="')[1].split('"')[0])

    _run_worker()
    response = staff_client.get(f"/console/simulator/poll/?rev={revision}")

    html = response.content.decode()
    answer = Message.objects.get(direction=Direction.OUTBOUND)
    assert answer.status == MessageStatus.SENT and answer.wamid.startswith("sandbox.")
    assert response.status_code == 200
    assert 'data-testid="business-message"' in html
    assert answer.text.split("\n")[0][:20] in html.replace("&#x27;", "'")
    assert 'hx-post="/console/simulator/ack/"' in html

    ack = staff_client.post("/console/simulator/ack/", {"wamid": [answer.wamid]})

    assert ack.status_code == 204
    answer.refresh_from_db()
    assert answer.status == MessageStatus.READ and answer.delivered_at and answer.read_at


def test_a_pending_bot_message_has_not_reached_the_phone(staff_client, sandbox):
    _be(staff_client)
    _send(staff_client, "Buongiorno")
    conversation = Conversation.objects.get()
    outbound.message_send(conversation=conversation, text="still pending", author=Author.BOT)

    html = staff_client.get("/console/simulator/").content.decode()

    assert "Buongiorno" in html
    assert "still pending" not in html


def test_a_poll_with_nothing_new_answers_204_with_one_query_for_the_thread(
    staff_client, sandbox, django_assert_max_num_queries
):
    _be(staff_client)
    _send(staff_client, "Buongiorno")
    revision = Conversation.objects.get().revision
    staff_client.get(f"/console/simulator/poll/?rev={revision}")  # warm the session

    # Session and user (the login), the sandbox channel, the revision.
    with django_assert_max_num_queries(4):
        response = staff_client.get(f"/console/simulator/poll/?rev={revision}")

    assert response.status_code == 204


@pytest.mark.django_db(transaction=True)
def test_the_phone_only_acknowledges_its_own_customers_messages(staff_client, sandbox, offline):
    _be(staff_client, number="393400000002")
    _send(staff_client, "Primo cliente")
    _run_worker()
    other_answer = Message.objects.get(direction=Direction.OUTBOUND)
    _be(staff_client, number="393400000003")

    staff_client.post("/console/simulator/ack/", {"wamid": [other_answer.wamid]})

    other_answer.refresh_from_db()
    assert other_answer.status == MessageStatus.SENT


def test_a_bad_number_is_refused_with_the_reason(staff_client, sandbox):
    response = _be(staff_client, number="not a number")

    assert response.status_code == 400
    assert "Digits only" in response.content.decode()


def test_a_new_random_customer_gets_a_fresh_number(staff_client, sandbox):
    _be(staff_client)
    staff_client.post("/console/simulator/customer/", {"new": "1"})

    assert staff_client.session["simulator_wa_id"] != "393401234567"
    assert staff_client.session["simulator_wa_id"].startswith("3900")


def test_the_page_never_shows_the_sandbox_secret(staff_client, sandbox):
    assert sandbox.app_secret not in staff_client.get("/console/simulator/").content.decode()


@pytest.mark.parametrize("url", ["/console/simulator/", "/console/simulator/poll/?rev=0"])
def test_anonymous_visitors_are_sent_to_the_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_a_logged_in_user_who_is_not_staff_is_refused(client, sandbox):
    client.force_login(UserFactory(username="customer-like", is_staff=False))

    assert client.get("/console/simulator/").status_code == 403
    assert client.post("/console/simulator/send/", {"text": "hi"}).status_code == 403
    assert not Message.objects.exists()


def test_a_delivery_the_sandbox_signed_is_recorded_as_the_sandboxs(sandbox):
    receipt = simulator_message_send(channel=sandbox, customer="393400000001", name="Giulia Test", text="ciao")

    assert receipt.status == 200
    assert WebhookEvent.objects.get(pk=receipt.event.pk).provider == Provider.SANDBOX


@pytest.mark.django_db(transaction=True)
def test_a_customer_without_a_number_is_picked_from_the_list_and_answered_on_the_phone(staff_client, sandbox, offline):
    conversation = ConversationFactory(channel=sandbox, profile__username_only=True, profile__profile_name="")
    profile = conversation.profile
    page = staff_client.get("/console/simulator/").content.decode()
    assert f'value="{profile.user_id}"' in page and f"{profile.at_username} · {profile.at_username}" in page

    _be(staff_client, number=profile.user_id, name="")
    _send(staff_client, "Ciao, sono senza numero")
    _run_worker()

    [message] = Message.objects.filter(direction=Direction.INBOUND)
    assert message.conversation == conversation and message.payload["from_user_id"] == profile.user_id
    assert "Ciao, sono senza numero" in staff_client.get("/console/simulator/").content.decode()
    answer = Message.objects.get(direction=Direction.OUTBOUND)
    assert staff_client.post("/console/simulator/ack/", {"wamid": [answer.wamid]}).status_code == 204
    answer.refresh_from_db()
    assert answer.status == MessageStatus.READ
    assert Conversation.objects.count() == 1
