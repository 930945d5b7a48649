import copy
import json
from functools import lru_cache
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from jsonschema import Draft202012Validator
from pytest_httpserver import HTTPServer
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug import Request, Response

from conversations.roles import ADMINS_GROUP, AGENTS_GROUP, role_groups_ensure
from conversations.services.botconfig import bot_config_cache_clear
from conversations.services.channels import channel_cache_clear
from integrations.meta.signature import sign
from tests.conversations.factories import APP_SECRET, ChannelFactory, UserFactory

# Fixtures of their own modules: Playwright's (browser tests) and the real worker processes'.
pytest_plugins = ["tests.browser", "tests.workers"]

# Third-party payloads and specs the tests replay, with their sources: fixtures/SOURCES.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPEC_URI = "urn:openai-openapi"


@lru_cache(maxsize=None)
def _bodies(filename: str) -> dict:
    """The webhook POST bodies of a file of tests/fixtures/meta, keyed by name (an entry that
    records its source beside the body holds it under `value`)."""
    data = json.loads((FIXTURES / "meta" / filename).read_text())
    return {name: entry["value"] if "object" not in entry else entry for name, entry in data.items()}


def _copies(filename: str):
    """A fixture's getter: a fresh copy of a named body, for a test to change as it likes."""
    return lambda name: copy.deepcopy(_bodies(filename)[name])


@pytest.fixture(scope="session")
def meta_examples() -> dict:
    """Meta's own webhook examples, keyed by Meta's example name; each is a POST body."""
    return _bodies("webhook-examples.json")


@pytest.fixture
def meta_example():
    return _copies("webhook-examples.json")


@pytest.fixture
def meta_reference():
    """The payloads of Meta's webhook reference pages that `meta_examples` lacks (edit, revoke)."""
    return _copies("webhook-reference-edit-revoke.json")


@pytest.fixture(scope="session")
def identity_examples() -> dict:
    """Payloads of customers known by a BSUID and of their identity changes, in the shapes
    Meta documents (fixtures/SOURCES.md)."""
    return _bodies("identity-examples.json")


@pytest.fixture
def identity_example():
    return _copies("identity-examples.json")


@pytest.fixture
def preference_example():
    """Meta's `user_preferences` example, keyed "Resume marketing messages" (SOURCES.md)."""
    return _copies("user-preferences.json")


@pytest.fixture
def pricing_example():
    """Delivery statuses carrying `pricing`, keyed "Statuses with pricing" (SOURCES.md)."""
    return _copies("status-pricing.json")


@pytest.fixture
def coexistence_example():
    """Webhook bodies of a number shared with the WhatsApp Business app (echoes, past chats,
    contacts), shaped as Meta's references describe them (SOURCES.md)."""
    return _copies("coexistence-examples.json")


def _without_discriminators(node):
    # OpenAPI's `discriminator` is not JSON Schema; its mapping confuses nothing but it must go
    # before validation, as SOURCES.md notes. The `oneOf` it stood beside becomes `anyOf`: the
    # discriminator is what picks one branch there, and some branches overlap without it (a
    # user message whose content is a list of parts, an image with its caption, is both an
    # `EasyInputMessage` and an `InputMessage`). Each branch is still checked whole.
    if isinstance(node, dict):
        if "discriminator" in node and "oneOf" in node:
            node = {("anyOf" if k == "oneOf" else k): v for k, v in node.items()}
        return {k: _without_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_without_discriminators(v) for v in node]
    return node


@pytest.fixture(scope="session")
def openai_spec_validators() -> dict[str, Draft202012Validator]:
    """Validators of the bodies OpenAI's API accepts (tests/fixtures/openai/), by route:
    `responses`, `conversations`, a conversation's `items`, `transcriptions`."""
    spec = json.loads((FIXTURES / "openai" / "openapi-subset.json").read_text())
    spec = _without_discriminators(spec)
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
    items_body = spec["paths"]["/conversations/{conversation_id}/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    def validator(schema: dict) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=registry)

    return {
        "responses": validator({"$ref": f"{SPEC_URI}#/components/schemas/CreateResponse"}),
        "conversations": validator({"$ref": f"{SPEC_URI}#/components/schemas/CreateConversationBody"}),
        # The items body is written inline on the path; its $refs point into the same document.
        "items": validator({"$id": f"{SPEC_URI}/items-body", **_rebase_refs(items_body)}),
        # Multipart: its fields as a JSON object (the file's part as its file name).
        "transcriptions": validator({"$ref": f"{SPEC_URI}#/components/schemas/CreateTranscriptionRequest"}),
    }


def _rebase_refs(node):
    if isinstance(node, dict):
        return {k: (f"{SPEC_URI}{v}" if k == "$ref" and v.startswith("#") else _rebase_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase_refs(v) for v in node]
    return node


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Django's default storage (media files) in a folder of the test's own, never var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _fresh_channel_cache():
    channel_cache_clear()
    bot_config_cache_clear()
    yield
    channel_cache_clear()
    bot_config_cache_clear()


@pytest.fixture
def offline(settings):
    """No OpenAI account at all: the offline agent answers."""
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens: any call would fail loudly


@pytest.fixture
def channel(db):
    return ChannelFactory()


# Meta's rule for whom a message goes to: a phone number in `to` or a business-scoped user id
# (BSUID, "US.13491208655302741918", a parent one "US.ENT.…") in `recipient`, exactly one.
GRAPH_SEND_PATH = re.compile(r"^/v\d+\.\d+/[^/]+/messages$")
PHONE = re.compile(r"\+?\d{1,20}")
BSUID = re.compile(r"[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}")


def misaddressed(body: dict) -> str:
    """How a body POSTed to Meta's messages endpoint breaks its addressing rule, or ''."""
    if "status" in body:  # a read receipt names a message, not a customer
        return ""
    to, recipient = body.get("to"), body.get("recipient")
    if (to is None) == (recipient is None):
        return "exactly one of 'to' and 'recipient' is required"
    if to is not None and not (isinstance(to, str) and PHONE.fullmatch(to)):
        return f"'to' must be a phone number, not {to!r}"
    if recipient is not None and not (isinstance(recipient, str) and BSUID.fullmatch(recipient)):
        return f"'recipient' must be a business-scoped user id, not {recipient!r}"
    return ""


class GraphServer(HTTPServer):
    """A loopback server that holds every send to Meta's addressing rule before its handlers
    see it: a send that breaks it is answered as Meta answers one (400, code 100) and kept in
    `misaddressed`, and the fixtures serving a fake Graph API fail their test on any."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.misaddressed: list[str] = []

    def clear(self) -> None:
        super().clear()
        self.misaddressed = []

    def dispatch(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.method == "POST" and GRAPH_SEND_PATH.match(request.path) else None
        error = misaddressed(body) if isinstance(body, dict) else ""
        if not error:
            return super().dispatch(request)
        self.misaddressed.append(error)
        refusal = {"error": {"message": f"(#100) Invalid parameter: {error}", "type": "OAuthException", "code": 100}}
        return Response(json.dumps(refusal), status=400, content_type="application/json")


@pytest.fixture(scope="session")
def make_httpserver(httpserver_listen_address, httpserver_ssl_context):
    """pytest-httpserver's session server (the fake OpenAI's and Graph API's), as a GraphServer."""
    host, port = httpserver_listen_address
    host, port = host or GraphServer.DEFAULT_LISTEN_HOST, port or GraphServer.DEFAULT_LISTEN_PORT
    server = GraphServer(host=host, port=port, ssl_context=httpserver_ssl_context)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def graph_api(httpserver, settings):
    """A fake Graph API on loopback; the real client talks to it over HTTP. Every send must
    follow Meta's addressing rule (`GraphServer`)."""
    settings.WHATSAPP_API_BASE_URL = httpserver.url_for("").rstrip("/")
    yield httpserver
    assert not httpserver.misaddressed, f"sends Meta would refuse: {httpserver.misaddressed}"


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


# --- staff, as admin sees them (each app's admin tests use these) -------------------------------


@pytest.fixture
def roles(db):
    role_groups_ensure()


@pytest.fixture
def admin_member(roles):
    """An admin by group membership (not a superuser): the role as the issue defines it."""
    user = UserFactory(username="alice-admin")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    return user


@pytest.fixture
def agent_member(roles):
    """A member of the Agents group: the console, never admin."""
    user = UserFactory(username="bob-agent")
    user.groups.add(Group.objects.get(name=AGENTS_GROUP))
    return user


@pytest.fixture
def admin_member_client(client, admin_member):
    # Italian is the default; the assertions read English texts.
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(admin_member)
    return client


@pytest.fixture
def admin_rows(channel, admin_member):
    """Sixty of every row an admin list shows (conversations, messages, notes, statuses,
    webhook events, quick replies, profile changes), for the lists' query counts."""
    from django.utils import timezone

    from conversations.models import ConversationNote, QuickReply, StatusUpdate
    from profiles.services import profile_field_set
    from tests.conversations.factories import ConversationFactory, MessageFactory
    from webhooks.models import WebhookEvent

    staff = [UserFactory(username=f"staff{n}") for n in range(3)]
    for n in range(60):
        conversation = ConversationFactory(channel=channel, assigned_to=staff[n % 3])
        message = MessageFactory(conversation=conversation, sent_by=staff[n % 3])
        ConversationNote.objects.create(conversation=conversation, author=staff[n % 3], text=f"note {n}")
        StatusUpdate.objects.create(wamid=message.wamid, status="delivered", timestamp=timezone.now())
        WebhookEvent.objects.create(channel=channel, body="{}", outcome="processed")
        QuickReply.objects.create(shortcut=f"reply{n}", title=f"Reply {n}", text="Hello")
        profile_field_set(profile=conversation.profile, field="email", value=f"c{n}@example.com", source="staff", user=staff[0])


# A list page costs this many queries at most, however many rows: session, user, permissions,
# count, rows, filters, date hierarchy; never one per row.
ADMIN_LIST_MAX_QUERIES = 15


@pytest.fixture
def redis_queue(settings):
    """The real Redis broker's default queue, emptied before the test."""
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the test suite runs with Redis: `make test`)")
    import redis

    connection = redis.Redis.from_url(settings.REDIS_URL)
    connection.delete("celery")

    class Queue:
        client = connection  # the broker's Redis, for what the methods below do not read

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


@pytest.fixture
def database_refuses():
    """`refuse(model, column, value)`: from now on PostgreSQL refuses (a DataError, raised by a
    trigger) to store a row of `model` whose `column` is `value` — a real failure of the
    database at that statement, for input the product itself accepts."""
    from django.db import connection

    made: list[tuple[str, str]] = []

    def refuse(model, column: str, value: str) -> None:
        name, table = f"refuse_{len(made)}", model._meta.db_table
        literal = "'" + value.replace("'", "''") + "'"
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22001'; END $$"
            )
            cursor.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW WHEN (NEW.{column} = {literal}) EXECUTE FUNCTION {name}()")
        made.append((name, table))

    yield refuse
    with connection.cursor() as cursor:
        for name, table in made:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}()")
