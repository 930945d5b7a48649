"""The worker's Redis transport: kombu's own, keeping one redis-py client per channel."""

import pytest

from whatsbot.broker import Channel

pytestmark = pytest.mark.broker


def test_the_worker_talks_to_redis_through_the_transport_that_keeps_its_client():
    from whatsbot.celery import app

    with app.connection_for_read() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        first = channel._create_client()
        assert channel._create_client() is first  # not a new client per command
        assert first.ping()


def test_a_new_client_follows_a_new_connection_pool():
    from whatsbot.celery import app

    with app.connection_for_read() as connection:
        channel = connection.default_channel
        first = channel._create_client()
        channel._disconnect_pools()  # what kombu does after a connection error
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool
        assert second.ping()
