"""Customer texts on the worker's event loop (`conversations.eventloop`, `services.textloop`):
the same outcomes as the threads' path, through the async OpenAI client and async psycopg
on the loop's own connections (so the tests commit: `transaction=True`)."""

import gc
import threading
import time

import pytest

from conversations import eventloop
from conversations.models import Message, MessageStatus, Owner
from conversations.services import fastpath, textloop

from tests.conversations.factories import ChannelFactory, ConversationFactory, MessageFactory
from .conftest import MESSAGES_PATH, customer_writes_while_the_model_thinks, sent_to_whatsapp

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loop(fake_openai, settings):
    if not fastpath.enabled():
        pytest.skip("the event loop's statements are PostgreSQL's")
    settings.REPLY_DEBOUNCE_SECONDS = 0
    running = eventloop.get()
    yield running
    assert eventloop.shutdown(10)


def handle(message: Message) -> str:
    return eventloop.get().run(textloop.inbound_handle, message.pk)


def test_a_text_is_extracted_and_answered_on_the_loop(loop, fake_openai, graph, redis_queue):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"first_name": "mario", "email": "Mario@Example.com"}
    fake_openai.replies.append("Piacere Mario! Per quale azienda ci scrivi?")
    message = MessageFactory(conversation=conversation, text="Sono Mario, mario@example.com")

    assert textloop.enabled()
    assert handle(message) == "sent"

    assert redis_queue.task_names() == []
    (reply,) = Message.objects.filter(direction="out")
    assert reply.text == "Piacere Mario! Per quale azienda ci scrivi?" and reply.status == MessageStatus.SENT
    assert reply.wamid.startswith("wamid.out") and reply.sent_at and reply.bot_config_version_id
    assert reply.input_tokens == 1200 and reply.cached_tokens == 1000 and reply.output_tokens == 40 and reply.cost_usd
    assert sent_to_whatsapp(graph) == ["Piacere Mario! Per quale azienda ci scrivi?"]
    profile = conversation.profile
    profile.refresh_from_db()
    assert (profile.first_name, profile.email) == ("Mario", "mario@example.com")
    assert profile.provenance["email"]["message_id"] == message.pk
    message.refresh_from_db()
    assert message.handled_at is not None and message.input_tokens == 1200  # the extraction's usage
    assert len(fake_openai.extraction_requests) == 1 and len(fake_openai.reply_requests) == 1
    assert fake_openai.reply_requests[0]["conversation"].startswith("conv_")  # created on first need
    # A second run (redelivery, sweeper) finds it handled: nothing more is sent.
    assert handle(message) == "skipped"
    assert Message.objects.filter(direction="out").count() == 1


def test_the_read_receipt_goes_to_meta(loop, fake_openai, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    assert handle(message) == "sent"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # sent beside the reply, not waited for
        bodies = [r.get_json() for r, _ in graph.log if r.path == MESSAGES_PATH]
        if any(b.get("status") == "read" for b in bodies):
            break
        time.sleep(0.02)
    assert {"messaging_product": "whatsapp", "status": "read", "message_id": message.wamid, "typing_indicator": {"type": "text"}} in bodies


def test_the_known_openai_conversation_is_reused(loop, fake_openai, graph):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Ciao")
    assert handle(first) == "sent"
    second = MessageFactory(conversation=conversation, text="Avete sconti?")
    assert handle(second) == "sent"

    assert len(fake_openai.conversations_created) == 1
    assert fake_openai.reply_requests[0]["conversation"] == fake_openai.reply_requests[1]["conversation"]
    assert [i["content"] for i in fake_openai.reply_requests[1]["input"]] == ["Avete sconti?"]


def test_a_failing_extraction_does_not_stop_the_reply(loop, fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract_failures.extend([500, 500, 500])
    message = MessageFactory(conversation=conversation, text="Ciao, sono Lucia")

    assert handle(message) == "sent"
    assert Message.objects.filter(direction="out", status=MessageStatus.SENT).count() == 1
    conversation.profile.refresh_from_db()
    assert conversation.profile.first_name == ""
    assert len(fake_openai.extraction_requests) == 3  # bounded retries


def test_an_openai_outage_ends_in_one_holding_message_and_the_human_queue(loop, fake_openai, graph):
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "lucia@example.com"}
    fake_openai.reply_failures.extend([503, 503, 503])
    message = MessageFactory(conversation=conversation, text="lucia@example.com")

    assert handle(message) == "holding"

    (holding,) = Message.objects.filter(direction="out")
    assert holding.status == MessageStatus.SENT
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason.startswith("AI unavailable")
    message.refresh_from_db()
    assert message.error_code == "openai_503" and "3 attempt" in message.error_detail
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "lucia@example.com"  # the extraction still ran


def test_a_human_owned_conversation_is_extracted_and_not_answered(loop, fake_openai, graph):
    conversation = ConversationFactory(owner=Owner.HUMAN)
    fake_openai.extract = lambda text: {"email": "giulia@example.com"}
    message = MessageFactory(conversation=conversation, text="giulia@example.com")

    assert handle(message) == "handled"
    assert not Message.objects.filter(direction="out").exists()
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "giulia@example.com"


def test_a_command_is_answered_from_the_database(loop, fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="/info")

    assert handle(message) == "sent"
    (reply,) = Message.objects.filter(direction="out")
    assert reply.status == MessageStatus.SENT
    assert fake_openai.reply_requests == [] and fake_openai.extraction_requests == []


def test_asking_for_a_person_hands_over_without_the_model(loop, fake_openai, graph):
    conversation = ConversationFactory()
    message = MessageFactory(conversation=conversation, text="Vorrei parlare con un operatore")

    assert handle(message) == "handoff"
    conversation.refresh_from_db()
    assert conversation.owner == Owner.HUMAN and conversation.handoff_reason == "The customer asked for a person."
    assert fake_openai.reply_requests == []
    assert Message.objects.filter(direction="out").count() == 1


def test_a_reply_overtaken_by_a_new_message_is_dropped_and_the_next_covers_both(loop, fake_openai, graph):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Quanto costa la spedizione?")
    arrived = customer_writes_while_the_model_thinks(fake_openai, conversation, "e in Svizzera?")
    fake_openai.replies.extend(["In Italia è gratuita.", "In Italia è gratuita, in Svizzera costa 15 €."])

    assert handle(first) == "stale"
    assert not Message.objects.filter(direction="out").exists()
    first.refresh_from_db()
    assert first.handled_at is None and first.input_tokens == 1200  # its extraction's usage is kept

    (second,) = arrived
    assert handle(second) == "sent"
    assert list(Message.objects.filter(direction="out").values_list("text", flat=True)) == ["In Italia è gratuita, in Svizzera costa 15 €."]
    assert [i["content"] for i in fake_openai.reply_requests[-1]["input"]] == ["Quanto costa la spedizione?", "e in Svizzera?"]
    assert not Message.objects.filter(direction="in", handled_at__isnull=True).exists()


def test_an_older_text_of_a_burst_leaves_the_answer_to_the_newest(loop, fake_openai, graph):
    conversation = ConversationFactory()
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    second = MessageFactory(conversation=conversation, text="vorrei un preventivo")

    assert handle(first) == "superseded"
    assert handle(second) == "sent"
    assert Message.objects.filter(direction="out").count() == 1
    assert [i["content"] for i in fake_openai.reply_requests[0]["input"]] == ["Buongiorno", "vorrei un preventivo"]


def test_a_temporary_send_failure_goes_to_the_delivery_retry(loop, fake_openai, graph_api, redis_queue):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"error": {"message": "busy", "code": 2}}, status=503)
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")

    assert handle(message) == "sent"  # committed; the delivery is the retry's now

    (reply,) = Message.objects.filter(direction="out")
    assert reply.status == MessageStatus.PENDING and reply.error_title.startswith("Retrying")
    assert "conversations.tasks.message_deliver" in redis_queue.task_names()


def test_with_a_quiet_period_the_text_is_extracted_and_the_reply_is_the_debounced_tasks(loop, fake_openai, graph, redis_queue, settings):
    settings.REPLY_DEBOUNCE_SECONDS = 3
    conversation = ConversationFactory()
    fake_openai.extract = lambda text: {"email": "anna@example.com"}
    first = MessageFactory(conversation=conversation, text="Buongiorno")
    second = MessageFactory(conversation=conversation, text="anna@example.com")

    assert handle(first) == "queued" and handle(second) == "queued"
    assert redis_queue.task_names() == ["conversations.tasks.agent_reply"] * 2
    assert not Message.objects.filter(direction="out").exists()
    second.refresh_from_db()
    assert second.input_tokens == 1200

    # The quiet period is over: the older text's task leaves the burst to the newer one's.
    assert loop.run(textloop.burst_reply, first.pk) == "superseded"
    assert loop.run(textloop.burst_reply, second.pk) == "sent"
    assert loop.run(textloop.burst_reply, second.pk) == "done"
    assert [i["content"] for i in fake_openai.reply_requests[0]["input"]] == ["Buongiorno", "anna@example.com"]
    assert Message.objects.filter(direction="out", status=MessageStatus.SENT).count() == 1
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "anna@example.com"


def test_a_warm_shutdown_lets_the_texts_in_flight_finish(loop, fake_openai, graph):
    message = MessageFactory(conversation=ConversationFactory(), text="Ciao")
    thinking = threading.Event()
    fake_openai.on_reply = lambda body: (thinking.set(), time.sleep(0.3))

    future = loop.submit(textloop.inbound_handle, message.pk)
    assert thinking.wait(5)
    assert eventloop.shutdown(10)  # waits for it, then closes the loop's connections

    assert future.result(0) == "sent"
    assert Message.objects.get(direction="out").status == MessageStatus.SENT


def test_a_channel_whose_provider_cannot_send_yet_still_gets_its_text_handled(loop, fake_openai):
    channel = ChannelFactory(provider="twilio", phone_number_id="twilio-1")
    message = MessageFactory(conversation=ConversationFactory(channel=channel), text="Ciao")

    assert handle(message) == "sent"  # committed; the send itself fails, visibly

    reply = Message.objects.get(direction="out")
    assert reply.status == MessageStatus.FAILED and "not supported" in reply.error_detail + reply.error_title


def test_the_loop_holds_at_most_its_limit_in_flight_and_drains(settings):
    settings.AGENT_LOOP_MAX_IN_FLIGHT = 1
    own = eventloop.EventLoop()  # not the process's: its own limit
    release = threading.Event()

    async def waits() -> str:
        while not release.is_set():
            await __import__("asyncio").sleep(0.01)
        return "done"

    first = own.submit(waits)
    second_submitted = threading.Event()
    threading.Thread(target=lambda: (own.submit(waits), second_submitted.set()), daemon=True).start()
    assert not second_submitted.wait(0.2)  # waiting for a free slot
    assert own.in_flight() == 1 and not own.drain(0.05)
    release.set()
    assert first.result(5) == "done" and second_submitted.wait(5)
    assert own.drain(5) and own.in_flight() == 0
    own.close()


def test_the_worker_pool_runs_the_loop_hand_offs_in_the_consumer_thread(loop):
    from whatsbot.workerpool import TaskPool

    pool = TaskPool(limit=2)
    threads = []

    def target(*args):
        threads.append(threading.get_ident())

    results = []
    pool.on_apply(target, args=("conversations.tasks.inbound_handle", "id", {}, b"", "", ""), callback=results.append)
    pool.on_apply(target, args=("conversations.tasks.message_deliver", "id", {}, b"", "", ""), callback=results.append).wait(5)
    pool.on_stop()

    assert threads[0] == threading.get_ident() and threads[1] != threading.get_ident()
    assert results == [None, None]


def test_with_the_loop_full_the_consumer_leaves_the_hand_off_to_a_pool_thread(loop, settings):
    from whatsbot.workerpool import TaskPool

    while loop.reserve():  # every slot taken
        pass
    pool = TaskPool(limit=1)
    threads = []
    pool.on_apply(lambda *args: threads.append(threading.get_ident()), args=("conversations.tasks.inbound_handle", "id", {}, b"", "", "")).wait(5)
    pool.on_stop()

    assert threads and threads[0] != threading.get_ident()  # the consumer did not wait


@pytest.mark.broker
def test_a_worker_through_redis_hands_the_text_to_its_loop(loop, fake_openai, channel, post_webhook, meta_example, graph, redis_queue):
    from celery.contrib.testing.worker import start_worker

    from whatsbot.celery import app

    fake_openai.replies.append("Buongiorno! Come posso aiutarti?")
    with start_worker(app, pool="whatsbot.workerpool:TaskPool", concurrency=2, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        assert post_webhook(meta_example("Text Message")).status_code == 200
        deadline = time.monotonic() + 15
        while not Message.objects.filter(direction="out", status=MessageStatus.SENT).exists():
            assert time.monotonic() < deadline, "no reply sent"
            time.sleep(0.05)

    assert sent_to_whatsapp(graph) == ["Buongiorno! Come posso aiutarti?"]
    assert Message.objects.get(direction="in").handled_at is not None
    assert len(fake_openai.reply_requests) == 1 and len(fake_openai.extraction_requests) == 1


def test_a_text_on_the_loop_leaves_no_database_wrapper_behind(loop, fake_openai, graph):
    # `connections[...]` on the loop gives each task a DatabaseWrapper of its own: a dozen
    # objects in reference cycles per text, for the garbage collector to stop the loop over.
    from django.db.backends.base.base import BaseDatabaseWrapper

    def wrappers() -> int:
        return sum(isinstance(o, BaseDatabaseWrapper) for o in gc.get_objects())

    conversation = ConversationFactory()
    assert handle(MessageFactory(conversation=conversation, text="Ciao")) == "sent"  # warm: the loop's threads, clients
    gc.collect()
    gc.disable()  # garbage stays countable
    try:
        before = wrappers()
        for text in ("Avete sconti?", "E per le spedizioni?", "Grazie"):
            assert handle(MessageFactory(conversation=conversation, text=text)) == "sent"
        assert wrappers() == before
    finally:
        gc.enable()
