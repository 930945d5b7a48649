"""The whole pipeline with a real Celery worker (the project's pool, `whatsbot.workerpool`)
consuming from the real Redis broker: a webhook message answered end to end."""

import base64
import hashlib
import json

import pytest
from werkzeug import Response

from conversations import runtime
from conversations.models import MediaFile, MediaState, Message, MessageStatus
from tests.conversations.conftest import MESSAGES_PATH
from tests.workers import until

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings):
    """A Celery worker in this process with the pool `celery worker` uses (CELERY_WORKER_POOL)."""
    from celery.contrib.testing.worker import start_worker

    from whatsbot.celery import app

    settings.OPENAI_API_KEY = ""  # the offline agent
    runtime.shutdown(5)  # a loop an earlier test left: the worker starts its own
    with start_worker(
        app, pool=settings.CELERY_WORKER_POOL, concurrency=2, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10
    ) as controller:
        yield
        controller.stop()  # a warm shutdown, as `celery worker` does on SIGTERM
    # Its signal drained and stopped the process's event loop.
    assert runtime._instance is None


def test_a_webhook_message_is_answered_by_a_worker_through_redis(
    channel, post_webhook, meta_example, graph_api, redis_queue, worker, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    graph_api.expect_request(MESSAGES_PATH).respond_with_handler(
        lambda request: Response(json.dumps({"messages": [{"id": "wamid.reply"}]}), content_type="application/json")
    )
    # The photo's look-up and bytes: fetched first, by its own task, then the turn.
    photo = b"\x89PNG\r\n\x1a\n a customer's photo"
    payload = meta_example("Image Message")
    image = payload["entry"][0]["changes"][0]["value"]["messages"][0]["image"]
    image["sha256"] = base64.b64encode(hashlib.sha256(photo).digest()).decode()
    graph_api.expect_request(f"/{settings.WHATSAPP_API_VERSION}/{image['id']}").respond_with_json(
        {"url": graph_api.url_for("/cdn/photo"), "mime_type": "image/jpeg"}
    )
    graph_api.expect_request("/cdn/photo").respond_with_data(photo, content_type="image/jpeg")

    response = post_webhook(payload)
    assert response.status_code == 200

    reply = until(lambda: Message.objects.filter(direction="out", status=MessageStatus.SENT).first())
    assert reply, "no reply sent"
    inbound = until(lambda: Message.objects.filter(direction="in", handled_at__isnull=False).first())
    assert inbound, "the customer's message not handled"
    assert until(lambda: len([r for r, _ in graph_api.log if r.path == MESSAGES_PATH]) >= 2)  # the read receipt goes out beside the turn
    media_file = MediaFile.objects.get(pk=inbound.pk)
    assert media_file.state == MediaState.STORED and media_file.file.read() == photo

    assert reply.wamid == "wamid.reply"
    bodies = [json.loads(request.get_data()) for request, _ in graph_api.log if request.path == MESSAGES_PATH]
    receipts = [b for b in bodies if b.get("status") == "read"]
    sends = [b for b in bodies if "to" in b]
    assert [r["message_id"] for r in receipts] == [inbound.wamid]
    assert [(s["to"], s["type"]) for s in sends] == [("16505551234", "text")]
    assert Message.objects.filter(direction="out").count() == 1
    assert len(redis_queue) == 0  # consumed


def test_a_customer_text_is_answered_after_the_quiet_period_by_the_worker(channel, post_webhook, meta_example, graph_api, settings, worker):
    settings.REPLY_DEBOUNCE_SECONDS = 0.5
    graph_api.expect_request(MESSAGES_PATH).respond_with_handler(
        lambda request: Response(json.dumps({"messages": [{"id": "wamid.text-reply"}]}), content_type="application/json")
    )

    assert post_webhook(meta_example("Text Message")).status_code == 200

    reply = until(lambda: Message.objects.filter(direction="out", status=MessageStatus.SENT).first())
    assert reply, "no reply sent"
    assert reply.wamid == "wamid.text-reply" and reply.author == "bot"
    assert Message.objects.get(direction="in").handled_at is not None
