"""The whole pipeline with a real Celery worker consuming from the real Redis broker."""

import json
import time

import pytest
from werkzeug import Response

from conversations.models import Message, MessageStatus

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_a_webhook_message_is_answered_by_a_worker_through_redis(channel, post_webhook, meta_example, graph_api, redis_queue):
    from celery.contrib.testing.worker import start_worker

    from whatsbot.celery import app

    graph_api.expect_request("/v23.0/106540352242922/messages").respond_with_handler(
        lambda request: Response(json.dumps({"messages": [{"id": "wamid.reply"}]}), content_type="application/json")
    )
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10):
        response = post_webhook(meta_example("Image Message"))
        assert response.status_code == 200

        reply = wait_for(lambda: Message.objects.filter(direction="out", status=MessageStatus.SENT).first())

    inbound = Message.objects.get(direction="in")
    assert inbound.handled_at is not None
    assert reply.wamid == "wamid.reply"
    bodies = [json.loads(request.get_data()) for request, _ in graph_api.log]
    assert bodies[0]["status"] == "read" and bodies[0]["message_id"] == inbound.wamid
    assert bodies[1]["to"] == "16505551234" and bodies[1]["type"] == "text"
    assert Message.objects.filter(direction="out").count() == 1
