"""An outbound message handed to its provider (`conversations.delivery`): a bot reply by the
turn that committed it, anything else by the `message_deliver` task (`deliver`). The fake
Graph API is a real HTTP server on loopback; the turn and the delivery use connections of
their own, so the tests commit."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.utils import timezone
from werkzeug import Response

from conversations import delivery
from conversations.models import Conversation, Message, MessageStatus
from conversations.queueing import MESSAGE_DELIVER
from conversations.services import outbound, sweeps
from conversations.sql import reply as reply_sql

from tests.conversations.factories import ChannelFactory, ConversationFactory, MessageFactory
from .conftest import MESSAGES_PATH, deliver, handle, reply, sent_to_whatsapp

pytestmark = pytest.mark.django_db(transaction=True)


def texts_accepted(graph_api) -> list[tuple[str, str]]:
    """(text, the id the fake Meta gave it) of every text it accepted."""
    out = []
    for request, response in graph_api.log:
        body = json.loads(request.get_data())
        if request.path == MESSAGES_PATH and body.get("type") == "text" and response.status_code == 200:
            out.append((body["text"]["body"], json.loads(response.get_data())["messages"][0]["id"]))
    return out


def graph_refuses(graph_api, status: int, error: dict, headers: dict | None = None):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_response(
        Response(json.dumps({"error": error}), status=status, headers=headers or {}, content_type="application/json")
    )


def staff_reply(conversation=None, text: str = "Buongiorno, il suo ordine è partito.") -> Message:
    return outbound.message_send(conversation=conversation or ConversationFactory(), text=text)


# --- the turn's reply --------------------------------------------------------------------


def test_a_reply_is_sent_by_the_turn_that_wrote_it(fake_openai, graph, redis_queue):
    question = MessageFactory(conversation=ConversationFactory(), text="Fate spedizioni all'estero?")
    assert handle(question.pk) == "queued"
    fake_openai.replies.append("Sì, in tutta Europa.")

    assert reply(question.pk) == "sent"

    answer = Message.objects.get(direction="out")
    assert answer.status == MessageStatus.SENT and answer.wamid and answer.sent_at and answer.attempts == 1
    assert answer.locked_until is None
    question.refresh_from_db()
    assert question.handled_at is not None
    assert sent_to_whatsapp(graph) == ["Sì, in tutta Europa."]
    assert MESSAGE_DELIVER not in redis_queue.task_names()  # no third task between the model and the customer


def test_a_temporary_send_failure_of_a_turn_s_reply_goes_to_the_delivery_retry(offline, graph_api, redis_queue, no_debounce):
    graph_refuses(graph_api, 503, {"message": "busy", "code": 2})
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    assert handle(message.pk) == "sent"  # committed; the delivery is the retry's now

    answer = Message.objects.get(direction="out")
    assert answer.status == MessageStatus.PENDING and answer.error_title.startswith("Retrying")
    assert MESSAGE_DELIVER in redis_queue.task_names()
    message.refresh_from_db()
    assert message.handled_at is not None


def test_a_channel_whose_provider_cannot_send_yet_still_gets_its_text_handled(offline, no_debounce):
    channel = ChannelFactory(provider="twilio", phone_number_id="twilio-1")
    message = MessageFactory(conversation=ConversationFactory(channel=channel), text="Ciao")

    assert handle(message.pk) == "sent"  # committed; the send itself fails, visibly

    answer = Message.objects.get(direction="out")
    assert answer.status == MessageStatus.FAILED and "not supported" in answer.error_detail + answer.error_title
    message.refresh_from_db()
    assert message.handled_at is not None


# --- a pending message, by the task ----------------------------------------------------------


def test_a_staff_reply_is_stored_pending_and_delivered_by_its_task(graph, redis_queue):
    conversation = ConversationFactory()
    message = staff_reply(conversation)

    assert message.status == MessageStatus.PENDING
    assert redis_queue.task_names() == [MESSAGE_DELIVER] and redis_queue.task_args() == [[message.pk]]

    assert deliver(message.pk) == "sent"

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.wamid.startswith("wamid.out") and message.attempts == 1
    (request, _), = graph.log
    assert json.loads(request.get_data())["to"] == conversation.profile.wa_id
    # A second run of the task (redelivery, the sweeper) sends nothing more.
    assert deliver(message.pk) == "skipped"
    assert sent_to_whatsapp(graph) == ["Buongiorno, il suo ordine è partito."]


def test_a_message_another_worker_holds_is_left_alone(graph):
    message = staff_reply()
    Message.objects.filter(pk=message.pk).update(locked_until=timezone.now() + timezone.timedelta(minutes=1))

    assert deliver(message.pk) == "skipped"
    assert graph.log == []


def test_a_temporary_refusal_parks_the_lease_until_the_retry_meta_asked_for(graph_api, redis_queue):
    graph_refuses(graph_api, 429, {"message": "slow down", "code": 130429}, headers={"Retry-After": "7"})
    message = staff_reply()
    redis_queue_before = len(redis_queue)

    assert deliver(message.pk) == "retry"

    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.error_code == "130429" and message.error_title.startswith("Retrying")
    parked = (message.locked_until - timezone.now()).total_seconds()
    assert 5 < parked <= 6.5  # Meta's 7 s, less half a second for the task's own countdown
    assert len(redis_queue) == redis_queue_before + 1 and redis_queue.task_names()[0] == MESSAGE_DELIVER


def test_temporary_refusals_are_bounded_then_the_message_is_failed(graph_api, settings):
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 2
    graph_refuses(graph_api, 503, {"message": "busy", "code": 2})
    message = staff_reply()

    assert deliver(message.pk) == "retry"
    Message.objects.filter(pk=message.pk).update(locked_until=timezone.now())  # the retry is due
    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.failed_at and message.attempts == 2
    assert len(graph_api.log) == 2


def test_a_permanent_refusal_fails_at_once_with_a_plain_reason(graph_api):
    graph_refuses(graph_api, 400, {"message": "Re-engagement message", "code": 131047})
    message = staff_reply()
    revision = Conversation.objects.get(pk=message.conversation_id).revision

    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.error_code == "131047"
    assert message.error_title == "More than 24 hours since the customer's last message: only a template can be sent."
    assert message.locked_until is None and message.handled_at is not None
    assert Conversation.objects.get(pk=message.conversation_id).revision == revision + 1  # the console shows it
    assert deliver(message.pk) == "skipped"  # never tried again
    assert len(graph_api.log) == 1


# --- a message the provider accepted is never sent again -------------------------------------


@pytest.fixture
def sent_cannot_be_written(monkeypatch):
    """`mark_sent` fails with the database's error the first `times` calls (None: always)."""
    monkeypatch.setattr(delivery, "SENT_WRITE_BACKOFF_SECONDS", 0.01)
    real = reply_sql.mark_sent
    calls: list[int] = []

    def fail(times: int | None = None) -> list[int]:
        async def mark_sent(**kwargs):
            calls.append(kwargs["message_id"])
            if times is None or len(calls) <= times:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return await real(**kwargs)

        monkeypatch.setattr(reply_sql, "mark_sent", mark_sent)
        return calls

    yield fail
    monkeypatch.setattr(reply_sql, "mark_sent", real)


def test_when_sent_fails_to_be_written_the_write_is_retried_not_the_send(graph, sent_cannot_be_written):
    message = staff_reply()
    calls = sent_cannot_be_written(times=2)

    assert deliver(message.pk) == "sent"

    assert calls == [message.pk] * 3
    ((text, wamid),) = texts_accepted(graph)  # one send
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.wamid == wamid
    assert outbound.accepted_recall(message_id=message.pk) == ""  # written: nothing kept aside


def test_a_reply_whose_sent_is_never_written_is_recorded_later_without_a_second_send(offline, graph, redis_queue, no_debounce, sent_cannot_be_written, settings):
    customer = MessageFactory(conversation=ConversationFactory(), text="Ciao")
    calls = sent_cannot_be_written()  # the database is gone for the whole turn

    assert handle(customer.pk) == "sent"

    ((text, wamid),) = texts_accepted(graph)
    answer = Message.objects.get(direction="out")
    assert len(calls) == delivery.SENT_WRITE_ATTEMPTS  # the write, retried a bounded number of times
    assert answer.status == MessageStatus.PENDING and answer.text == text
    assert outbound.accepted_recall(message_id=answer.pk) == wamid  # the provider's id, kept aside

    # The database is back. The sweeper finds the reply pending once its lease has run out...
    sent_cannot_be_written(times=0)
    Message.objects.filter(pk=answer.pk).update(
        locked_until=timezone.now() - timezone.timedelta(seconds=1),
        created_at=timezone.now() - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS + 1),
    )
    redis_queue_before = redis_queue.task_args()
    assert sweeps.outbound_sweep() == 1
    assert [answer.pk] in redis_queue.task_args() and len(redis_queue.task_args()) == len(redis_queue_before) + 1

    # ...and its delivery records the kept id instead of sending again.
    assert deliver(answer.pk) == "sent"

    assert len(texts_accepted(graph)) == 1 and sent_to_whatsapp(graph) == [text]
    answer.refresh_from_db()
    assert (answer.status, answer.wamid, answer.attempts) == (MessageStatus.SENT, wamid, 2)
    assert outbound.accepted_recall(message_id=answer.pk) == ""
    assert deliver(answer.pk) == "skipped"


def test_a_message_accepted_on_its_last_attempt_is_recorded_not_failed_by_the_sweeper(graph, redis_queue, sent_cannot_be_written, settings):
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 2
    message = staff_reply()
    Message.objects.filter(pk=message.pk).update(attempts=1)  # one attempt refused already
    sent_cannot_be_written()

    assert deliver(message.pk) == "sent"  # the last attempt: accepted, "sent" not written
    ((text, wamid),) = texts_accepted(graph)

    sent_cannot_be_written(times=0)
    Message.objects.filter(pk=message.pk).update(
        locked_until=timezone.now() - timezone.timedelta(seconds=1),
        created_at=timezone.now() - timezone.timedelta(seconds=settings.INBOUND_SWEEP_AFTER_SECONDS + 1),
    )
    assert sweeps.outbound_sweep() == 1  # queued for its record, not marked failed
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING

    assert deliver(message.pk) == "sent"
    message.refresh_from_db()
    assert (message.status, message.wamid) == (MessageStatus.SENT, wamid)
    assert len(texts_accepted(graph)) == 1
