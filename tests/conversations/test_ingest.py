"""The webhook's PostgreSQL hot path skips the health-check query and reconnects instead."""

import pytest
from django.db import connection

from conversations.models import Message
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _message(meta_example, wamid: str) -> dict:
    body = meta_example("Text Message")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = wamid
    return body


def test_a_delivery_on_a_connection_the_server_closed_is_stored_on_a_new_one(channel, post_webhook, meta_example, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("the pipelined hot path is PostgreSQL's")
    assert post_webhook(_message(meta_example, "wamid.before")).status_code == 200
    old_pid = connection.connection.info.backend_pid

    import psycopg

    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], password=settings["PASSWORD"],
        dbname=settings["NAME"], autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [old_pid])

    assert post_webhook(_message(meta_example, "wamid.after")).status_code == 200
    assert connection.connection.info.backend_pid != old_pid
    assert "database connection lost; reconnecting" in caplog.text
    assert set(Message.objects.values_list("wamid", flat=True)) == {"wamid.before", "wamid.after"}
    assert WebhookEvent.objects.filter(outcome="processed").count() == 2
