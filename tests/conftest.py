import copy
import json
from pathlib import Path

import pytest
from django.test import Client

from webhooks.meta import sign
from webhooks.services import channel_cache_clear

from .factories import APP_SECRET, ChannelFactory

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # a checkout with shared/ beside the project root
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def meta_examples() -> dict:
    """Meta's own webhook examples, keyed by Meta's example name; each is a POST body."""
    data = json.loads((SHARED / "fixtures" / "whatsapp" / "meta-webhook-examples.json").read_text())
    return {name: example["value"] for name, example in data.items()}


@pytest.fixture
def meta_example(meta_examples):
    def get(name: str) -> dict:
        return copy.deepcopy(meta_examples[name])

    return get


@pytest.fixture(autouse=True)
def _fresh_channel_cache():
    channel_cache_clear()
    yield
    channel_cache_clear()


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
