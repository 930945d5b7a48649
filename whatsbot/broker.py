"""kombu's Redis transport, with one redis-py client per channel for its own commands.

kombu builds a new `redis.Redis` object (over the channel's shared connection pool) for
every command it sends outside its event loop: the acknowledgement of every task, the
unacked bookkeeping of every message received, every publish. Building one costs more CPU
than the command (its response-callback tables are copied each time): with a task per
customer text, about a tenth of the worker's CPU. A redis-py client is safe to share between
threads (each command takes a connection from the pool), so one is kept per channel, and
a new one made when the channel replaces its pool (after a connection error).
Used through `CELERY_BROKER_TRANSPORT`; the messages and queues are kombu's own.
"""

from __future__ import annotations

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
