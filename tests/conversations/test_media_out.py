"""Staff send an image or a document, and react to a customer's message, from the console: the
file is checked (type from its bytes, size) before anything is stored, kept in our storage,
uploaded to Meta by the delivery (a multipart POST to /{phone-number-id}/media, checked by the
fake Graph API) and sent by the id Meta gave it, through the same task, retries and ticks as a
text. The fake Graph API is a real HTTP server on loopback; the delivery has a database
connection of its own, so the tests commit."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import struct
import time
import zipfile
import zlib

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from werkzeug import Request, Response

from conversations.models import Author, Conversation, MediaFile, MediaState, Message, MessageStatus, MessageType, Owner
from conversations.queueing import MESSAGE_DELIVER
from tests.conversations.factories import ACCESS_TOKEN, PHONE_NUMBER_ID, ConversationFactory, MessageFactory, UserFactory

from .conftest import MESSAGES_PATH, deliver
from .console.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

MEDIA_PATH = f"/{settings.WHATSAPP_API_VERSION}/{PHONE_NUMBER_ID}/media"


def png(width: int = 40, height: int = 30, rgb: tuple[int, int, int] = (37, 211, 102)) -> bytes:
    """A real PNG (one colour), as a browser would upload it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def docx() -> bytes:
    """The parts that make a ZIP a Word document."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


class FakeMeta:
    """Meta's media upload and messages endpoints. `upload_failures` / `send_failures` are HTTP
    statuses answered before the next success. Every upload is checked as Meta reads it: a
    multipart body with `messaging_product`, `type` and `file`, and the token in the header."""

    def __init__(self, server):
        self.uploads: list[dict] = []  # what each upload request carried
        self.sends: list[dict] = []
        self.upload_failures: list[int] = []
        self.send_failures: list[int] = []
        self.problems: list[str] = []
        self._ids = itertools.count(1)
        server.expect_request(MEDIA_PATH, method="POST").respond_with_handler(self.upload)
        server.expect_request(MESSAGES_PATH, method="POST").respond_with_handler(self.send)

    def upload(self, request: Request) -> Response:
        file = request.files.get("file")
        self.uploads.append({
            "content_type": request.mimetype, "form": dict(request.form), "authorization": request.headers.get("Authorization"),
            "filename": file.filename if file else None, "file_type": file.mimetype if file else None,
            "content": file.read() if file else None,
        })  # fmt: skip
        if request.mimetype != "multipart/form-data" or file is None or set(request.form) != {"messaging_product", "type"}:
            self.problems.append(f"not an upload Meta reads: {request.mimetype}, fields {sorted(request.form)}")
            return self._error(400, 100)
        if self.upload_failures:
            return self._error(self.upload_failures.pop(0), 131000)
        return Response(json.dumps({"id": f"media.{next(self._ids)}"}), content_type="application/json")

    def send(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.sends.append(body)
        if self.send_failures:
            return self._error(self.send_failures.pop(0), 131000)
        return Response(json.dumps({"messages": [{"id": f"wamid.media-out{next(self._ids)}"}]}), content_type="application/json")

    @staticmethod
    def _error(status: int, code: int) -> Response:
        return Response(json.dumps({"error": {"message": "fake failure", "code": code}}), status=status, content_type="application/json")


@pytest.fixture
def meta(graph_api):
    fake = FakeMeta(graph_api)
    yield fake
    assert not fake.problems, fake.problems


@pytest.fixture
def desk(db):
    """Anna (her console in English), and Giulia's conversation: she wrote minutes ago (the
    window is open), the bot answered."""
    agent = UserFactory(username="anna", first_name="Anna", last_name="Bianchi")
    conversation = ConversationFactory(profile__wa_id="393331234567", profile__first_name="Giulia")
    MessageFactory(conversation=conversation, text="Buongiorno, mi mandate lo scontrino?")
    MessageFactory(conversation=conversation, direction="out", author=Author.BOT, text="Un attimo", status=MessageStatus.DELIVERED)
    client = client_for(agent)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return {"agent": agent, "client": client, "conversation": conversation}


def post(client, url: str, data: dict):
    return client.post(url, data, HTTP_HX_REQUEST="true")


def attach(desk, content: bytes, name: str, content_type: str, caption: str = ""):
    """Staff send a file from the composer (a multipart POST, as htmx makes it)."""
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    return post(desk["client"], f"/console/c/{desk['conversation'].pk}/reply/", {"text": caption, "file": upload})


def flash(response) -> str:
    return response.content.decode()


@pytest.fixture
def statuses_post(post_webhook):
    def post_statuses(wamid: str, *statuses: str) -> None:
        now = int(time.time())
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "419561257915477", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                "statuses": [{"id": wamid, "status": s, "timestamp": str(now + i), "recipient_id": "393331234567"} for i, s in enumerate(statuses)],
            }}]}],
        }  # fmt: skip
        assert post_webhook(payload).status_code == 200

    return post_statuses


# --- An image, from the reply view to its ticks -------------------------------------------------------


def test_an_image_is_uploaded_then_sent_by_its_media_id_with_the_caption_and_gets_its_ticks(desk, meta, statuses_post, media_root):
    response = attach(desk, PNG, "scontrino.png", "image/png", caption="  Ecco lo scontrino  ")

    assert json.loads(response["HX-Trigger"]) == {"poll-now": True, "reply-sent": True}
    message = Message.objects.get(author=Author.STAFF)
    assert (message.type, message.text, message.status, message.sent_by) == (
        MessageType.IMAGE, "Ecco lo scontrino", MessageStatus.PENDING, desk["agent"],
    )  # fmt: skip
    assert message.media == {"mime_type": "image/png", "filename": "scontrino.png", "size": len(PNG)}
    # Our copy, stored: the thread shows what staff sent the way it shows a customer's media.
    media = MediaFile.objects.get(message=message)
    assert (media.state, media.mime_type, media.size, media.sha256, media.provider_media_id) == (
        MediaState.STORED, "image/png", len(PNG), hashlib.sha256(PNG).hexdigest(), "",
    )  # fmt: skip
    assert media.file.read() == PNG and str(media_root) in media.file.path
    # Sending took the conversation over, as a text does.
    conversation = Conversation.objects.get(pk=desk["conversation"].pk)
    assert (conversation.owner, conversation.assigned_to) == (Owner.HUMAN, desk["agent"])
    assert conversation.last_message_preview == "[image] Ecco lo scontrino"

    assert deliver(message.pk) == "sent"  # what the Celery task runs

    (upload,) = meta.uploads
    assert upload["form"] == {"messaging_product": "whatsapp", "type": "image/png"}
    assert (upload["filename"], upload["file_type"], upload["content"]) == ("scontrino.png", "image/png", PNG)
    assert upload["authorization"] == f"Bearer {ACCESS_TOKEN}"
    (sent,) = meta.sends
    assert sent["to"] == "393331234567" and sent["type"] == "image"
    assert sent["image"] == {"id": "media.1", "caption": "Ecco lo scontrino"}  # by id, never a link
    message.refresh_from_db()
    assert (message.status, message.wamid) == (MessageStatus.SENT, "wamid.media-out2")
    assert MediaFile.objects.get(message=message).provider_media_id == "media.1"

    statuses_post("wamid.media-out2", "delivered", "read")
    message.refresh_from_db()
    assert message.status == MessageStatus.READ and message.delivered_at and message.read_at


def test_a_document_is_sent_with_its_file_name(desk, meta):
    attach(desk, PDF, "Fattura 2026-114.pdf", "application/pdf", caption="La fattura")
    message = Message.objects.get(author=Author.STAFF)
    assert message.type == MessageType.DOCUMENT and MediaFile.objects.get(message=message).filename == "Fattura 2026-114.pdf"

    assert deliver(message.pk) == "sent"

    (upload,) = meta.uploads
    assert upload["form"]["type"] == "application/pdf" and upload["filename"] == "Fattura 2026-114.pdf"
    assert meta.sends[0]["document"] == {"id": "media.1", "caption": "La fattura", "filename": "Fattura 2026-114.pdf"}


def test_an_office_document_is_told_from_its_parts_not_from_the_browser(desk, meta):
    attach(desk, docx(), "preventivo.docx", "application/octet-stream")
    message = Message.objects.get(author=Author.STAFF)
    media = MediaFile.objects.get(message=message)
    assert (message.type, message.text, media.mime_type) == (
        MessageType.DOCUMENT, "", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )  # fmt: skip


# --- Retries: the same task, and the file uploaded once ----------------------------------------------


def test_a_temporary_upload_failure_is_retried_and_a_send_failure_after_the_upload_does_not_upload_again(desk, meta, settings, redis_queue):
    settings.WHATSAPP_RETRY_BASE_SECONDS = 0  # each retry is due at once
    meta.upload_failures = [503]
    meta.send_failures = [503]
    attach(desk, PNG, "foto.png", "image/png", caption="Foto")
    message = Message.objects.get(author=Author.STAFF)

    assert deliver(message.pk) == "retry"  # the upload failed: nothing sent
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.error_title.startswith("Retrying")
    assert (len(meta.uploads), len(meta.sends)) == (1, 0)

    assert deliver(message.pk) == "retry"  # uploaded this time; the send failed
    assert (len(meta.uploads), len(meta.sends)) == (2, 1)
    assert MediaFile.objects.get(message=message).provider_media_id == "media.1"

    assert deliver(message.pk) == "sent"  # the file uploaded before, named by its id
    assert (len(meta.uploads), len(meta.sends)) == (2, 2)
    assert meta.sends[-1]["image"]["id"] == "media.1"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.attempts == 3
    # The reply's delivery, queued on commit, and each retry: the same task as a text's.
    assert redis_queue.task_names() == [MESSAGE_DELIVER] * 3


def test_a_permanent_upload_refusal_fails_the_message_with_meta_s_reason(desk, graph_api):
    graph_api.expect_request(MEDIA_PATH, method="POST").respond_with_response(
        Response(json.dumps({"error": {"message": "(#131053) Media upload error", "code": 131053}}), status=400, content_type="application/json")
    )
    attach(desk, PNG, "foto.png", "image/png")
    message = Message.objects.get(author=Author.STAFF)

    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_title) == (MessageStatus.FAILED, "131053", "The media could not be uploaded.")
    assert ACCESS_TOKEN not in message.error_detail + message.error_title
    assert all(request.path == MEDIA_PATH for request, _ in graph_api.log)  # never sent


# --- Refused before anything is stored -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "content_type", "says"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "foto.png", "image/png", "cannot be sent on WhatsApp"),  # a program, renamed
        (b"GIF89a\x01\x00\x01\x00", "animazione.gif", "image/gif", "cannot be sent on WhatsApp"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg", "image/svg+xml", "cannot be sent on WhatsApp"),
        (b"", "vuoto.pdf", "application/pdf", "is empty"),
    ],
)
def test_a_file_whatsapp_does_not_take_is_refused_with_a_clear_message_and_nothing_is_stored(desk, media_root, content, name, content_type, says):
    response = attach(desk, content, name, content_type, caption="guarda")

    assert 'class="alert error"' in flash(response) and says in flash(response) and name in flash(response)
    assert not Message.objects.filter(author=Author.STAFF).exists() and not MediaFile.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*.*"))
    assert Conversation.objects.get(pk=desk["conversation"].pk).owner == Owner.BOT  # nothing taken over


def test_an_image_over_the_limit_is_refused_with_the_limit_and_nothing_is_stored(desk, settings, media_root):
    settings.MEDIA_OUT_IMAGE_MAX_BYTES = 1024  # a setting may lower WhatsApp's 5 MB
    big = png(200, 200, (1, 2, 3)) + b"\x00" * 2048
    response = attach(desk, big, "grande.png", "image/png")

    assert "too large" in flash(response) and "1.0\xa0KB" in flash(response)
    assert not Message.objects.filter(author=Author.STAFF).exists() and not MediaFile.objects.exists()


def test_the_image_and_document_limits_are_whatsapp_s_by_default():
    from conversations.services.attachments import max_bytes

    assert max_bytes(MessageType.IMAGE) == 5 * 1024 * 1024 and max_bytes(MessageType.DOCUMENT) == 100 * 1024 * 1024


def test_a_caption_longer_than_whatsapp_takes_is_refused(desk):
    response = attach(desk, PNG, "foto.png", "image/png", caption="x" * 1025)
    assert "caption is too long" in flash(response)
    assert not Message.objects.filter(author=Author.STAFF).exists() and not MediaFile.objects.exists()


def test_a_closed_window_refuses_a_file(desk, media_root):
    Conversation.objects.filter(pk=desk["conversation"].pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=25))
    response = attach(desk, PNG, "foto.png", "image/png")

    assert "24" in flash(response) and 'class="alert error"' in flash(response)
    assert not Message.objects.filter(author=Author.STAFF).exists() and not MediaFile.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


# --- Reactions ------------------------------------------------------------------------------------------


def customer_message(desk) -> Message:
    return Message.objects.get(conversation=desk["conversation"], author=Author.CUSTOMER)


def react(desk, message: Message, emoji: str):
    return post(desk["client"], f"/console/c/{desk['conversation'].pk}/react/", {"message": message.pk, "emoji": emoji})


def test_a_reaction_is_sent_by_the_delivery_task_and_shows_on_the_customer_s_message(desk, meta):
    target = customer_message(desk)
    response = react(desk, target, "👍")
    assert 'class="alert error"' not in flash(response)

    reaction = Message.objects.get(type=MessageType.REACTION, author=Author.STAFF)
    assert (reaction.text, reaction.context_wamid, reaction.status) == ("👍", target.wamid, MessageStatus.PENDING)
    assert deliver(reaction.pk) == "sent"
    (sent,) = meta.sends
    assert sent == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "393331234567",
        "type": "reaction", "reaction": {"message_id": target.wamid, "emoji": "👍"},
    }  # fmt: skip
    # Not a bubble: shown on the message it reacts to, and a reaction takes nothing over.
    html = desk["client"].get(f"/console/c/{desk['conversation'].pk}/").content.decode()
    assert f'id="msg-{reaction.pk}"' not in html
    assert '<span data-author="staff" data-status="sent">👍</span>' in html
    assert Conversation.objects.get(pk=desk["conversation"].pk).owner == Owner.BOT


def test_removing_a_reaction_sends_an_empty_emoji_and_the_thread_no_longer_shows_it(desk, meta):
    target = customer_message(desk)
    react(desk, target, "❤️")
    deliver(Message.objects.get(type=MessageType.REACTION, text="❤️").pk)

    react(desk, target, "")
    removal = Message.objects.get(type=MessageType.REACTION, text="")
    assert deliver(removal.pk) == "sent"

    assert meta.sends[-1]["reaction"] == {"message_id": target.wamid, "emoji": ""}
    html = desk["client"].get(f"/console/c/{desk['conversation'].pk}/").content.decode()
    assert 'data-author="staff"' not in html and "❤️</span>" not in html


def test_a_failed_reaction_shows_why_on_the_message(desk, graph_api):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_response(
        Response(json.dumps({"error": {"message": "(#131051) Unsupported", "code": 131051}}), status=400, content_type="application/json")
    )
    target = customer_message(desk)
    react(desk, target, "😂")
    assert deliver(Message.objects.get(type=MessageType.REACTION).pk) == "failed"

    html = desk["client"].get(f"/console/c/{desk['conversation'].pk}/").content.decode()
    assert "Reaction 😂 not sent: Unsupported message type." in html


def test_only_an_offered_emoji_on_a_customer_s_message_can_be_sent(desk):
    target = customer_message(desk)
    assert "reactions offered" in flash(react(desk, target, "🤡"))
    bot_message = Message.objects.get(conversation=desk["conversation"], author=Author.BOT)
    assert 'class="alert error"' in flash(react(desk, bot_message, "👍"))
    other = MessageFactory(conversation=ConversationFactory())
    assert 'class="alert error"' in flash(react(desk, other, "👍"))  # another conversation's message
    assert not Message.objects.filter(type=MessageType.REACTION).exists()


def test_a_closed_window_refuses_a_reaction_and_hides_the_react_button(desk):
    Conversation.objects.filter(pk=desk["conversation"].pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=25))
    response = react(desk, customer_message(desk), "👍")

    assert "24" in flash(response) and 'class="alert error"' in flash(response)
    assert not Message.objects.filter(type=MessageType.REACTION).exists()
    html = desk["client"].get(f"/console/c/{desk['conversation'].pk}/").content.decode()
    assert "data-react" not in html


def test_the_react_button_is_on_customer_messages_only_with_the_configured_emoji(desk, settings):
    settings.REACTION_EMOJIS = ["👍", "🎉"]
    html = desk["client"].get(f"/console/c/{desk['conversation'].pk}/").content.decode()
    assert html.count("data-react") == 1  # the customer's message, not the bot's
    assert 'value="🎉"' in html and 'value="❤️"' not in html


@pytest.mark.parametrize(
    ("content", "name", "content_type", "mime_type"),
    [
        (b"Orari: lun-ven 9-18\nGrazie!", "orari.txt", "text/plain", "text/plain"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "vecchio.doc", "application/msword", "application/msword"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "listino.xls", "application/octet-stream", "application/vnd.ms-excel"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "foto.jpeg", "application/octet-stream", "image/jpeg"),
    ],
)
def test_the_type_sent_is_the_one_the_bytes_are(desk, content, name, content_type, mime_type):
    attach(desk, content, name, content_type)
    assert MediaFile.objects.get().mime_type == mime_type


def test_on_the_simulator_s_number_a_file_gets_an_id_and_nothing_leaves(desk, graph_api):
    from conversations.models import Channel, Provider

    Channel.objects.filter(pk=desk["conversation"].channel_id).update(provider=Provider.SANDBOX)
    attach(desk, PNG, "foto.png", "image/png", caption="Foto")
    message = Message.objects.get(author=Author.STAFF)

    assert deliver(message.pk) == "sent"
    assert graph_api.log == []
    assert MediaFile.objects.get(message=message).provider_media_id.startswith("sandbox-media.")
