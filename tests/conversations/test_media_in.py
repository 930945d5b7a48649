"""A customer's media, round trip: Meta's webhook through the real view, the fetch task run
eagerly against a fake Graph API on loopback (its look-up and its CDN), the bytes kept in
Django's storage (a temporary folder), shown to staff through the console, refused to anyone
else; expiry, refusals, bounded retries, the sweeper, retention; and the customer's turn
(the acknowledgement) after its media."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from werkzeug import Response

from conversations import media, runtime
from conversations.agent.prompts import media_acknowledgement
from conversations.models import MediaFile, MediaState, Message
from conversations.services import media as media_services
from conversations.services import sweeps
from tests.conversations.factories import ACCESS_TOKEN, PHONE_NUMBER_ID, ChannelFactory, ConversationFactory, MessageFactory, UserFactory

from .conftest import MESSAGES_PATH, sent_to_whatsapp

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_worker")]

VERSION = settings.WHATSAPP_API_VERSION
# A real 1×1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def b64_sha256(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


@pytest.fixture
def meta(graph):
    """The fake Meta: sends succeed (`graph`); `serve(media_id, content)` answers a media
    look-up with a CDN URL on the same server and the bytes there (with the token only)."""

    class Meta:
        server = graph

        def serve(self, media_id: str, content: bytes, *, mime_type: str = "image/png", sha256: str | None = None) -> str:
            cdn = f"/cdn/{media_id}"
            graph.expect_request(f"/{VERSION}/{media_id}", method="GET", query_string={"phone_number_id": PHONE_NUMBER_ID}).respond_with_json(
                {"messaging_product": "whatsapp", "url": graph.url_for(cdn), "mime_type": mime_type,
                 "sha256": sha256 if sha256 is not None else hashlib.sha256(content).hexdigest(), "file_size": len(content), "id": media_id}
            )  # fmt: skip
            graph.expect_request(cdn, method="GET", headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}).respond_with_data(
                content, content_type=mime_type
            )
            return graph.url_for(cdn)

        def paths(self) -> list[str]:
            return [request.path for request, _ in graph.log]

    return Meta()


@pytest.fixture
def customer_sends(post_webhook, meta_example):
    """`send(kind, media_id, content, **media)`: a customer's media message through the signed
    webhook, its `sha256` Meta's (base64) for `content` unless given."""

    def send(kind: str, media_id: str, content: bytes, *, wamid: str = "", **fields) -> Message:
        payload = meta_example("Image Message")
        message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        announced = {"mime_type": "image/png", "sha256": b64_sha256(content), "id": media_id, **fields}
        message.pop("image")
        message.update(id=wamid or f"wamid.{media_id}", timestamp=str(int(time.time())), type=kind, **{kind: announced})
        assert post_webhook(payload).status_code == 200
        return Message.objects.get(wamid=message["id"])

    return send


@pytest.fixture
def channel_(db):
    return ChannelFactory()


@pytest.fixture
def staff(db):
    client = Client()
    client.force_login(UserFactory(username="anna"))
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def media_url(message: Message) -> str:
    return reverse("console:media", args=(message.conversation_id, message.pk))


def test_a_customers_photo_is_fetched_stored_shown_to_staff_and_then_acknowledged(channel_, meta, customer_sends, staff, media_root):
    meta.serve("media-1", PNG)

    message = customer_sends("image", "media-1", PNG)

    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.STORED and media_file.attempts == 1
    assert media_file.mime_type == "image/png" and media_file.size == len(PNG)
    assert media_file.sha256 == hashlib.sha256(PNG).hexdigest()
    with media_file.file.open("rb") as stored:
        assert stored.read() == PNG
    assert str(media_root) in media_file.file.path and "Sheena" not in media_file.file.name  # never the customer's name
    # The look-up, the bytes, then the turn: read receipt and the acknowledgement.
    paths = meta.paths()
    assert paths.index("/cdn/media-1") < paths.index(MESSAGES_PATH)
    assert sent_to_whatsapp(meta.server) == [media_acknowledgement(type=message.type, language=message.conversation.profile.language, configured={})]
    message.refresh_from_db()
    assert message.handled_at is not None and message.locked_until is None

    response = staff.get(media_url(message))
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline") and "private" in response["Cache-Control"]
    assert "sandbox" in response["Content-Security-Policy"] and "default-src 'none'" in response["Content-Security-Policy"]
    thread = staff.get(reverse("console:thread", args=(message.conversation_id,))).content.decode()
    assert f'src="{media_url(message)}"' in thread and 'class="media-zoom"' in thread


def test_an_anonymous_visitor_is_sent_to_the_login_and_never_gets_the_bytes(channel_, meta, customer_sends, client):
    meta.serve("media-1", PNG)
    message = customer_sends("image", "media-1", PNG)

    response = client.get(media_url(message))

    assert response.status_code == 302 and response["Location"].startswith("/console/login/?next=")
    assert PNG not in response.content


def test_a_message_asked_for_through_another_conversation_is_not_found(channel_, meta, customer_sends, staff):
    meta.serve("media-1", PNG)
    message = customer_sends("image", "media-1", PNG)
    other = ConversationFactory(channel=channel_)

    assert staff.get(reverse("console:media", args=(other.pk, message.pk))).status_code == 404
    assert staff.get(reverse("console:media", args=(message.conversation_id, message.pk + 999))).status_code == 404


def test_the_url_the_webhook_carried_is_used_first_with_the_token(channel_, meta, customer_sends):
    url = meta.serve("media-1", PNG)

    message = customer_sends("image", "media-1", PNG, url=url)

    assert MediaFile.objects.get(pk=message.pk).state == MediaState.STORED
    assert f"/{VERSION}/media-1" not in meta.paths()  # no look-up needed


def test_bytes_that_do_not_match_the_announced_sha256_are_refused_and_the_customer_still_answered(channel_, meta, customer_sends, staff, media_root):
    meta.serve("media-1", PNG, sha256="")  # the look-up says nothing; the webhook's sha256 is for other bytes

    message = customer_sends("image", "media-1", PNG, sha256=b64_sha256(b"another picture"))

    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.REFUSED and "sha256" in media_file.error and not media_file.file
    assert not list(media_root.rglob("*.png"))  # nothing kept
    assert len(sent_to_whatsapp(meta.server)) == 1  # the acknowledgement all the same
    assert staff.get(media_url(message)).status_code == 404
    thread = staff.get(reverse("console:thread", args=(message.conversation_id,))).content.decode()
    assert "Media refused" in thread and "does not match" in thread


def test_a_file_larger_than_whatsapps_limit_for_its_type_is_refused(channel_, meta, customer_sends):
    sticker = b"RIFF" + b"\0" * (100 * 1024)  # a static sticker may be 100 KB at most
    meta.serve("media-2", sticker, mime_type="image/webp")

    message = customer_sends("sticker", "media-2", sticker, mime_type="image/webp", animated=False)

    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.REFUSED and "larger than" in media_file.error


def test_media_meta_no_longer_has_is_expired_and_the_thread_says_so(channel_, meta, customer_sends, staff):
    meta.server.expect_request(f"/{VERSION}/media-3").respond_with_response(
        Response(json.dumps({"error": {"message": "Unsupported get request.", "type": "GraphMethodException", "code": 100, "error_subcode": 33}}), status=400)
    )

    message = customer_sends("image", "media-3", PNG)

    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.EXPIRED and media_file.error == "WhatsApp no longer has this file."
    assert ACCESS_TOKEN not in media_file.error
    thread = staff.get(reverse("console:thread", args=(message.conversation_id,))).content.decode()
    assert "Media expired: WhatsApp no longer has this file" in thread
    assert len(sent_to_whatsapp(meta.server)) == 1


def test_a_temporary_failure_is_tried_again_after_a_backoff_and_then_stored(channel_, meta, customer_sends, settings):
    settings.INBOUND_SWEEP_AFTER_SECONDS = 0
    failures = [503]

    def cdn(request):
        if failures:
            return Response("busy", status=failures.pop())
        return Response(PNG, content_type="image/png")

    meta.server.expect_request(f"/{VERSION}/media-4").respond_with_json({"url": meta.server.url_for("/cdn/media-4"), "mime_type": "image/png"})
    meta.server.expect_request("/cdn/media-4").respond_with_handler(cdn)

    message = customer_sends("image", "media-4", PNG)

    # The first attempt failed: the retry waits (its task, run eagerly at once, found the lease parked).
    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.PENDING and media_file.attempts == 1 and media_file.error.startswith("Retrying")
    message.refresh_from_db()
    assert message.handled_at is None and message.locked_until is not None  # its turn waits for the media
    assert sweeps.inbound_sweep() == 0  # the sweeper does not start the turn early
    assert sent_to_whatsapp(meta.server) == []

    MediaFile.objects.filter(pk=message.pk).update(locked_until=timezone.now())  # the backoff is over
    Message.objects.filter(pk=message.pk).update(locked_until=timezone.now())
    assert sweeps.media_sweep() == 1  # the retry, as the sweeper queues a lost one

    media_file.refresh_from_db()
    assert media_file.state == MediaState.STORED and media_file.attempts == 2
    assert len(sent_to_whatsapp(meta.server)) == 1  # and now its turn


def test_attempts_are_bounded_and_the_media_then_failed(channel_, meta, customer_sends, settings):
    settings.MEDIA_FETCH_MAX_ATTEMPTS = 2
    settings.INBOUND_SWEEP_AFTER_SECONDS = 0
    meta.server.expect_request(f"/{VERSION}/media-5").respond_with_response(Response("down", status=500))

    message = customer_sends("image", "media-5", PNG)
    for _ in range(3):  # each backoff over (both leases were parked until the retry)
        MediaFile.objects.filter(pk=message.pk).update(locked_until=None)
        Message.objects.filter(pk=message.pk).update(locked_until=None)
        sweeps.media_sweep()

    media_file = MediaFile.objects.get(pk=message.pk)
    assert media_file.state == MediaState.FAILED and media_file.attempts == 2
    assert [p for p in meta.paths() if p == f"/{VERSION}/media-5"] == [f"/{VERSION}/media-5"] * 2
    assert len(sent_to_whatsapp(meta.server)) == 1  # answered once it was given up


def test_a_second_run_finds_the_media_stored_and_does_nothing(channel_, meta, customer_sends):
    meta.serve("media-1", PNG)
    message = customer_sends("image", "media-1", PNG)
    calls = len(meta.paths())

    assert runtime.run(media.media_fetch, message.pk) == "skipped"
    assert len(meta.paths()) == calls


def test_the_simulator_keeps_no_media_and_says_so(channel_, meta):
    sandbox = ChannelFactory(phone_number_id="sandbox-1", provider="sandbox")
    message = MessageFactory(conversation=ConversationFactory(channel=sandbox), type="image", text="", media={"id": "m-1"})

    assert runtime.run(media.media_fetch, message.pk) == "failed"
    assert MediaFile.objects.get(pk=message.pk).error == "The simulator keeps no media."


def test_retention_deletes_old_files_and_the_thread_says_so(channel_, meta, customer_sends, staff, settings):
    settings.MEDIA_RETENTION_DAYS = 30
    meta.serve("media-1", PNG)
    meta.serve("media-6", PNG)
    old, recent = customer_sends("image", "media-1", PNG), customer_sends("image", "media-6", PNG)
    path = MediaFile.objects.get(pk=old.pk).file.path
    MediaFile.objects.filter(pk=old.pk).update(stored_at=timezone.now() - timezone.timedelta(days=31))

    assert media_services.media_retention_apply() == 1

    gone = MediaFile.objects.get(pk=old.pk)
    assert gone.state == MediaState.DELETED and gone.deleted_at and not gone.file
    assert not os.path.exists(path)
    assert MediaFile.objects.get(pk=recent.pk).state == MediaState.STORED
    assert staff.get(media_url(old)).status_code == 404
    thread = staff.get(reverse("console:thread", args=(old.conversation_id,))).content.decode()
    assert "Deleted after 31 days (retention)" in thread


def test_retention_zero_keeps_everything(channel_, meta, customer_sends, settings):
    settings.MEDIA_RETENTION_DAYS = 0
    meta.serve("media-1", PNG)
    message = customer_sends("image", "media-1", PNG)
    MediaFile.objects.filter(pk=message.pk).update(stored_at=timezone.now() - timezone.timedelta(days=3650))

    assert media_services.media_retention_apply() == 0


def test_a_document_is_offered_as_a_download_with_its_name_and_size(channel_, meta, customer_sends, staff):
    pdf = b"%PDF-1.4 fake invoice"
    meta.serve("media-7", pdf, mime_type="application/pdf")

    message = customer_sends("document", "media-7", pdf, mime_type="application/pdf", filename="fattura.pdf")

    response = staff.get(media_url(message))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment") and "fattura.pdf" in response["Content-Disposition"]
    thread = staff.get(reverse("console:thread", args=(message.conversation_id,))).content.decode()
    assert "fattura.pdf" in thread and "21\xa0bytes" in thread and "Download" in thread


def test_a_document_whose_name_carries_a_new_line_is_still_served(channel_, meta, customer_sends, staff):
    # The name is the customer's phone's: a control character must not break the header (Django
    # encodes such a name as RFC 6266 `filename*`).
    pdf = b"%PDF-1.4 fake invoice"
    meta.serve("media-9", pdf, mime_type="application/pdf")

    message = customer_sends("document", "media-9", pdf, mime_type="application/pdf", filename="fattura\r\nSet-Cookie: x=1.pdf")

    response = staff.get(media_url(message))
    assert response.status_code == 200
    assert "\n" not in response["Content-Disposition"] and "Set-Cookie" not in {k for k, _ in response.items()}


def test_an_echo_with_media_is_fetched_and_gets_no_turn(channel_, meta, post_webhook, coexistence_example):
    meta.serve("media-8", PNG)
    payload = coexistence_example("Echo: text")
    echo = payload["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    echo.pop("text")
    echo.update(type="image", timestamp=str(int(time.time())), image={"id": "media-8", "mime_type": "image/png", "sha256": b64_sha256(PNG)})

    assert post_webhook(payload).status_code == 200

    message = Message.objects.get(wamid=echo["id"])
    assert MediaFile.objects.get(pk=message.pk).state == MediaState.STORED
    assert sent_to_whatsapp(meta.server) == []  # no acknowledgement of the business's own photo


def test_the_thread_shows_each_media_without_a_query_per_message(channel_, staff):
    conversation = ConversationFactory(channel=channel_)

    def thread_queries(count: int) -> int:
        for n in range(count):
            message = MessageFactory(conversation=conversation, type="image", text="", media={"id": f"m{n}"})
            MediaFile.objects.create(message=message, state=MediaState.EXPIRED, error="gone")
        with CaptureQueriesContext(connection) as queries:
            page = staff.get(reverse("console:thread", args=(conversation.pk,)))
        assert page.content.decode().count("Media expired") == MediaFile.objects.count()
        return len(queries)

    assert thread_queries(10) == thread_queries(10)  # 10 media bubbles, then 20: the same queries
