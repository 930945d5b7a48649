import copy
import json
from pathlib import Path

import pytest
from django.test import Client

from conversations.services.botconfig import bot_config_cache_clear
from integrations.meta.signature import sign
from conversations.services.channels import channel_cache_clear

from .browser import browser, browser_context, eager_worker, session_login  # noqa: F401  (Playwright fixtures)
from tests.conversations.factories import APP_SECRET, ChannelFactory

# Third-party payloads and specs the tests replay, with their sources: fixtures/SOURCES.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def meta_examples() -> dict:
    """Meta's own webhook examples, keyed by Meta's example name; each is a POST body."""
    data = json.loads((FIXTURES / "meta" / "webhook-examples.json").read_text())
    return {name: example["value"] for name, example in data.items()}


@pytest.fixture
def meta_example(meta_examples):
    def get(name: str) -> dict:
        return copy.deepcopy(meta_examples[name])

    return get


@pytest.fixture(autouse=True)
def _fresh_channel_cache():
    channel_cache_clear()
    bot_config_cache_clear()
    yield
    channel_cache_clear()
    bot_config_cache_clear()


@pytest.fixture
def channel(db):
    return ChannelFactory()


@pytest.fixture
def graph_api(httpserver, settings):
    """A fake Graph API on loopback; the real client talks to it over HTTP."""
    settings.WHATSAPP_API_BASE_URL = httpserver.url_for("").rstrip("/")
    return httpserver


@pytest.fixture
def post_webhook(client: Client):
    def post(payload, *, secret: str = APP_SECRET, signature: str | None = None, raw: bytes | None = None):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {}
        if signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        elif secret:
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body, secret)
        return client.post("/webhooks/whatsapp/", data=body, content_type="application/json", **headers)

    return post


@pytest.fixture
def redis_queue(settings):
    """The real Redis broker's default queue, emptied before the test."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the test suite runs with Redis: `make test`)")
    import redis

    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.delete("celery")

    class Queue:
        def __len__(self) -> int:
            return connection.llen("celery")

        def task_names(self) -> list[str]:
            return [json.loads(raw)["headers"]["task"] for raw in connection.lrange("celery", 0, -1)]

        def task_args(self) -> list:
            import base64

            out = []
            for raw in connection.lrange("celery", 0, -1):
                envelope = json.loads(raw)
                body = json.loads(base64.b64decode(envelope["body"]))
                out.append(body[0])
            return out

    yield Queue()
    connection.delete("celery")


def _reset_celery_pools(app) -> None:
    # Forget (do not close) the pools: kombu keeps them in a global registry keyed by URL,
    # and a closed one would be handed out again to later tests.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker_down():
    """Point Celery at a port where nothing listens, as when Redis is down."""
    from whatsbot.celery import app

    old = app.conf.broker_url
    _reset_celery_pools(app)
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    yield
    _reset_celery_pools(app)
    app.conf.broker_url = old
