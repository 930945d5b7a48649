"""Message templates: synced from the business account through the fake Graph API (pages,
fields, a template no longer listed, a bad item), admin's "Sync templates now", the template
webhooks through the real, signed webhook view (status, quality, category; out of order; a
template not synced yet), and a send from the console: variables checked, the body Meta
receives, the stored text and payload, Meta's refusal and the marketing guard.

Payloads: tests/fixtures/meta/template-examples.json (SOURCES.md)."""

from __future__ import annotations

import copy
import json
import time

import pytest
from django.conf import settings
from django.core.cache import cache
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone, translation
from django.utils.html import escape
from werkzeug import Response

from conversations.delivery import MARKETING_STOPPED
from conversations.models import MediaFile, MediaState, Message, MessageStatus, MessageTemplate, MessageType, TemplateStatus
from conversations.services import console as actions
from conversations.services.attachments import attachment_check
from conversations.services.templates import HEADER_FILE_ID, template_render
from conversations.templatesync import templates_sync
from integrations.meta.graph import REASONS
from tests.conftest import FIXTURES
from tests.conversations.factories import ACCESS_TOKEN, ChannelFactory, ConversationFactory, UserFactory
from webhooks.models import Outcome, WebhookEvent

from .conftest import MESSAGES_PATH, deliver
from .test_media_out import MEDIA_PATH, PDF, PNG, FakeMeta

WABA = "102290129340398"  # the account in Meta's template examples
TEMPLATES_PATH = f"/{settings.WHATSAPP_API_VERSION}/{WABA}/message_templates"


def it(text: str, **values) -> str:
    """`text` as an Italian member of staff reads it (the console's and admin's default language)."""
    with translation.override("it"):
        return translation.gettext(text) % values if values else translation.gettext(text)


def example(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / "meta" / "template-examples.json").read_text())[name]["value"])


def page_two() -> dict:
    """The listing's last page: an Italian marketing template and an item Meta could never
    have meant (no name), which is skipped."""
    return {
        "data": [
            {
                "name": "summer_sale", "language": "it", "status": "APPROVED", "category": "MARKETING", "id": "777",
                "parameter_format": "NAMED", "quality_score": {"score": "UNKNOWN"},
                "components": [{"type": "BODY", "text": "Ciao {{customer_name}}, saldi fino al {{discount}}%!"}],
            },
            {"language": "it", "status": "APPROVED", "id": "888", "components": []},
        ],
        "paging": {"cursors": {"before": "QVFIUk", "after": "QVFIUl"}},
    }  # fmt: skip


pytestmark = pytest.mark.django_db


@pytest.fixture
def account(db):
    return ChannelFactory(business_account_id=WABA)


def serve_listing(graph_api, pages: list[dict]) -> None:
    graph_api.expect_request(TEMPLATES_PATH, method="GET", query_string={"fields": _fields(), "limit": "100"}).respond_with_json(pages[0])
    for n, page in enumerate(pages[1:], start=1):
        after = pages[n - 1]["paging"]["cursors"]["after"]
        graph_api.expect_request(TEMPLATES_PATH, method="GET", query_string={"fields": _fields(), "limit": "100", "after": after}).respond_with_json(page)


def _fields() -> str:
    from integrations.meta.graph import TEMPLATE_FIELDS

    return TEMPLATE_FIELDS


@pytest.fixture
def synced(account, graph_api):
    """The account's templates as Meta lists them (two pages)."""
    serve_listing(graph_api, [example("Templates page 1"), page_two()])
    templates_sync(channel=account)
    graph_api.clear()
    return {t.name: t for t in MessageTemplate.objects.all()}


# --- sync ------------------------------------------------------------------------------------------


def test_a_sync_reads_every_page_keeps_the_fields_and_skips_a_bad_item(account, graph_api):
    gone = MessageTemplate.objects.create(business_account_id=WABA, name="old_promo", language="it", status="APPROVED",
                                          synced_at=timezone.now(), created_at=timezone.now() - timezone.timedelta(days=1))  # fmt: skip
    serve_listing(graph_api, [example("Templates page 1"), page_two()])

    result = templates_sync(channel=account)

    assert (result.created, result.updated, result.removed) == (3, 0, 1)
    assert result.skipped == ["888: a template without 'name' or 'language'"]
    assert all(r.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}" for r, _ in graph_api.log) and len(graph_api.log) == 2
    reservation = MessageTemplate.objects.get(name="reservation_confirmation")
    assert (reservation.template_id, reservation.language, reservation.category, reservation.status, reservation.quality_score) == (
        "546151681022936", "en_US", "UTILITY", "APPROVED", "GREEN",
    )  # fmt: skip
    assert reservation.parameter_format == "NAMED" and reservation.components[0] == {
        "type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://scontent.whatsapp.net/v/t61.29466-34/123_n.jpg"]},
    }  # fmt: skip
    assert MessageTemplate.objects.get(name="summer_sale").category == "MARKETING"
    gone.refresh_from_db()
    assert gone.deleted_at is not None and not gone.sendable


def test_a_template_listed_again_is_no_longer_marked_gone(synced, account, graph_api):
    MessageTemplate.objects.filter(name="summer_sale").update(deleted_at=timezone.now())
    serve_listing(graph_api, [example("Templates page 1"), page_two()])

    result = templates_sync(channel=account)

    assert (result.created, result.updated, result.removed) == (0, 3, 0)
    assert MessageTemplate.objects.get(name="summer_sale").deleted_at is None


def test_admin_syncs_now_and_says_what_changed(account, graph_api, admin_member):
    serve_listing(graph_api, [example("Templates page 1"), page_two()])
    client = Client()
    client.force_login(admin_member)

    page = client.get("/admin/conversations/messagetemplate/").content.decode()
    assert it("Sync templates now") in page
    response = client.post("/admin/conversations/messagetemplate/sync/", follow=True)

    said = [str(m) for m in get_messages(response.wsgi_request)]
    counts = it("Account %(account)s: %(created)d created, %(updated)d updated, %(removed)d removed.", account=WABA, created=3, updated=0, removed=0)
    assert said == [counts + " " + it("Skipped: %(items)s.", items="888: a template without 'name' or 'language'")]
    assert MessageTemplate.objects.count() == 3
    detail = client.get(f"/admin/conversations/messagetemplate/{MessageTemplate.objects.get(name='order_confirmation').pk}/change/")
    assert "Thank you {{1}}! Your order {{2}} ships on {{3}}." in detail.content.decode()  # the preview


def test_admin_shows_metas_error_and_never_the_token(account, graph_api, admin_member):
    refusal = {"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190}}
    graph_api.expect_request(TEMPLATES_PATH, method="GET").respond_with_json(refusal, status=401)
    client = Client()
    client.force_login(admin_member)

    response = client.post("/admin/conversations/messagetemplate/sync/", follow=True)

    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [it("Account %(account)s: Meta did not list the templates: %(error)s", account=WABA, error=it(REASONS[190]))]
    assert ACCESS_TOKEN not in response.content.decode() and not MessageTemplate.objects.exists()


# --- webhooks ----------------------------------------------------------------------------------


def offered(client: Client, conversation) -> str:
    html = client.get(f"/console/c/{conversation.pk}/").content.decode()
    start = html.find('id="template-composer"')
    return html[start : html.index("</footer>", start)] if start >= 0 else ""


@pytest.fixture
def closed(account):
    """A customer who last wrote two days ago: only a template can reach them."""
    return ConversationFactory(channel=account, profile__wa_id="16505551234", last_inbound_at=timezone.now() - timezone.timedelta(days=2))


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(username="anna"))
    return client


def now_entry(body: dict, at: int | None = None) -> dict:
    body["entry"][0]["time"] = at if at is not None else int(time.time())
    return body


def test_a_status_webhook_pauses_a_template_and_the_composer_no_longer_offers_it(synced, closed, staff, post_webhook):
    assert "order_confirmation" in offered(staff, closed)

    assert post_webhook(now_entry(example("Template paused"))).status_code == 200

    template = MessageTemplate.objects.get(name="order_confirmation")
    assert template.status == TemplateStatus.PAUSED and template.reason.startswith("Your WhatsApp message template has been paused")
    assert "order_confirmation" not in offered(staff, closed) and "reservation_confirmation" in offered(staff, closed)
    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.PROCESSED and "1 template update(s)" in event.detail


def test_an_older_status_never_rolls_a_template_back(synced, post_webhook):
    now = int(time.time())
    approved = now_entry(example("Template paused"), now)
    approved["entry"][0]["changes"][0]["value"].update(event="APPROVED", other_info={})
    paused_earlier = now_entry(example("Template paused"), now - 600)

    post_webhook(approved)
    post_webhook(paused_earlier)  # Meta's retry of an older event, arriving late

    assert MessageTemplate.objects.get(name="order_confirmation").status == TemplateStatus.APPROVED


def test_quality_and_category_updates_apply_at_once(synced, closed, staff, post_webhook):
    post_webhook(now_entry(example("Template quality")))
    post_webhook(now_entry(example("Template category")))

    template = MessageTemplate.objects.get(name="order_confirmation")
    assert (template.quality_score, template.category, template.status) == ("YELLOW", "MARKETING", "APPROVED")


def test_an_update_of_a_template_not_synced_yet_is_kept_and_asks_for_a_sync(account, graph_api, post_webhook, eager_worker,
                                                                            django_capture_on_commit_callbacks):  # fmt: skip
    cache.delete(f"whatsbot:templates-sync:{WABA}")  # no sync asked for in the last minute (an earlier run's)
    serve_listing(graph_api, [example("Templates page 1"), page_two()])
    # Stamped a minute ahead (Meta's clock may run ahead of ours): newer than the listing the sync reads.
    body = now_entry(example("Template quality"), int(time.time()) + 60)

    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(body).status_code == 200

    template = MessageTemplate.objects.get(name="order_confirmation")
    assert template.quality_score == "YELLOW"  # the update, kept: the sync's older listing did not roll it back
    assert template.synced_at is not None and template.components  # the sync it asked for brought the rest
    assert MessageTemplate.objects.count() == 3


def test_template_updates_of_an_account_without_a_channel_are_acknowledged_and_dropped(account, post_webhook):
    body = now_entry(example("Template paused"))
    body["entry"][0]["id"] = "366634483210360"

    assert post_webhook(body).status_code == 200

    event = WebhookEvent.objects.get()
    assert event.outcome == Outcome.IGNORED and "366634483210360" in event.detail
    assert not MessageTemplate.objects.exists()


# --- sending from the console ----------------------------------------------------------------------


@pytest.fixture
def graph_sends(graph_api):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json({"messages": [{"id": "wamid.template1"}]})
    return graph_api


def sent_bodies(graph_api) -> list[dict]:
    return [json.loads(r.get_data()) for r, _ in graph_api.log if r.path == MESSAGES_PATH]


@pytest.mark.django_db(transaction=True)
def test_a_template_with_named_variables_and_a_header_image_is_sent_rendered_and_kept(synced, closed, staff, graph_sends):
    template = synced["reservation_confirmation"]
    values = {"header.link": "https://example.com/table.jpg", "body.number_of_guests": "4", "body.day": "sabato",
              "body.date": "30 agosto", "body.time": "19:30"}  # fmt: skip

    response = staff.post(f"/console/c/{closed.pk}/template/send/", {"template": template.pk, **values}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Retarget"] == "#composer"

    message = Message.objects.get(type=MessageType.TEMPLATE)
    assert deliver(message.pk) == "sent"
    [body] = sent_bodies(graph_sends)
    assert body["type"] == "template" and body["to"] == "16505551234"
    assert body["template"] == {
        "name": "reservation_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/table.jpg"}}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "4", "parameter_name": "number_of_guests"},
                {"type": "text", "text": "sabato", "parameter_name": "day"},
                {"type": "text", "text": "30 agosto", "parameter_name": "date"},
                {"type": "text", "text": "19:30", "parameter_name": "time"},
            ]},
        ],
    }  # fmt: skip
    message.refresh_from_db()
    assert message.text.startswith("*You're all set!*\n\nYour reservation for 4 at Lucky Shrub Eatery on sabato, 30 agosto, at 19:30")
    assert message.text.endswith("[Change reservation]") and message.status == MessageStatus.SENT
    assert message.payload["template"]["values"] == values and message.payload["template"]["category"] == "UTILITY"
    html = staff.get(f"/console/c/{closed.pk}/").content.decode()
    assert it("Template: %(name)s (%(language)s)", name="reservation_confirmation", language="en_US") in html and "Your reservation for 4 at Lucky Shrub Eatery" in html


@pytest.mark.django_db(transaction=True)
def test_a_positional_template_sends_its_values_in_order_with_the_button_suffix(synced, closed, graph_sends):
    template = synced["order_confirmation"]
    values = {"header.1": "A-1042", "body.1": "Giulia", "body.2": "A-1042", "body.3": "lunedì", "button.0": "A-1042"}

    message = actions.conversation_template_send(conversation_id=closed.pk, user=UserFactory(username="anna"), template_id=template.pk, values=values)
    assert deliver(message.pk) == "sent"

    [body] = sent_bodies(graph_sends)
    assert body["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "A-1042"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Giulia"}, {"type": "text", "text": "A-1042"}, {"type": "text", "text": "lunedì"}]},
        {"type": "button", "sub_type": "url", "index": "0", "parameters": [{"type": "text", "text": "A-1042"}]},
    ]  # fmt: skip
    assert message.text == "Order A-1042\n\nThank you Giulia! Your order A-1042 ships on lunedì.\n\n[Track it]"


def test_a_missing_variable_is_refused_with_a_clear_message_and_nothing_is_stored(synced, closed, staff):
    template = synced["order_confirmation"]

    response = staff.post(
        f"/console/c/{closed.pk}/template/send/", {"template": template.pk, "header.1": "A-1", "body.1": "Giulia", "body.2": " ",
                                                   "body.3": "lunedì", "button.0": "A-1"}, HTTP_HX_REQUEST="true",
    )  # fmt: skip

    html = response.content.decode()
    assert response["HX-Retarget"] == "#template-form"
    assert 'data-error="body.2"' in html and it("Fill in “%(label)s”.", label=it("Body: %(name)s", name="2")) in html
    assert not Message.objects.filter(type=MessageType.TEMPLATE).exists()
    with pytest.raises(actions.TemplateNotFilled) as refused, translation.override("en"):
        actions.conversation_template_send(
            conversation_id=closed.pk, user=UserFactory(username="anna"), template_id=synced["reservation_confirmation"].pk,
            values={"header.link": "http://example.com/x.jpg"},
        )  # fmt: skip
    assert refused.value.errors["header.link"] == "“Header image (https link)” must be an https:// link."
    assert set(refused.value.errors) == {"header.link", "body.number_of_guests", "body.day", "body.date", "body.time"}


def test_the_preview_is_rendered_by_the_server_as_it_will_be_stored(synced, closed, staff):
    template = synced["order_confirmation"]

    html = staff.post(f"/console/c/{closed.pk}/template/preview/", {"template": template.pk, "body.1": "Giulia"}).content.decode()

    assert "Thank you Giulia! Your order {{2}} ships on {{3}}." in html
    assert template_render(template, {"body.1": "Giulia"}).startswith("Order {{1}}\n\nThank you Giulia!")


@pytest.mark.django_db(transaction=True)
def test_a_paused_template_refused_by_meta_shows_metas_reason(synced, closed, staff, graph_api):
    refusal = {"error": {"message": "(#132015) Template is Paused", "type": "OAuthException", "code": 132015,
                         "error_data": {"messaging_product": "whatsapp", "details": "Template is paused due to low quality"}}}  # fmt: skip
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json(refusal, status=400)
    values = {"header.1": "A-1", "body.1": "Giulia", "body.2": "A-1", "body.3": "lunedì", "button.0": "A-1"}
    message = actions.conversation_template_send(conversation_id=closed.pk, user=UserFactory(username="anna"),
                                                 template_id=synced["order_confirmation"].pk, values=values)  # fmt: skip

    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert message.error_code == "132015" and message.error_title == REASONS[132015]
    html = staff.get(f"/console/c/{closed.pk}/").content.decode()
    failure = html[html.index('class="failure"', html.index(f'id="msg-{message.pk}"')) :]
    assert it(REASONS[132015]) in failure[:600] and "Template is paused due to low quality" in failure[:600]


@pytest.mark.django_db(transaction=True)
def test_a_marketing_template_is_offered_disabled_and_never_reaches_a_customer_who_stopped(synced, account, staff, graph_api):
    stopped = ConversationFactory(
        channel=account, profile__wa_id="393330000009", profile__marketing_messages="stop", profile__marketing_messages_at=timezone.now(),
        last_inbound_at=timezone.now() - timezone.timedelta(days=3),
    )  # fmt: skip
    sale = synced["summer_sale"]

    composer = offered(staff, stopped)
    option = composer[composer.index(f'value="{sale.pk}"') :]
    with translation.override("it"):  # the staff member's console language (Italian unless chosen)
        reason = translation.gettext("The customer stopped marketing messages: a marketing template is not sent to them.")
    assert option[: option.index(">")].count("disabled") == 1 and reason in option[:400]
    # Posted anyway (an old page): stored, then refused by the delivery before Meta is called.
    message = actions.conversation_template_send(
        conversation_id=stopped.pk, user=UserFactory(username="anna"), template_id=sale.pk,
        values={"body.customer_name": "Gino", "body.discount": "50"},
    )  # fmt: skip
    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert message.error_code == str(MARKETING_STOPPED) and graph_api.log == []


def test_the_customers_language_comes_first(synced, account, staff):
    italian = ConversationFactory(channel=account, profile__wa_id="393330000010", profile__language="it",
                                  last_inbound_at=timezone.now() - timezone.timedelta(days=3))  # fmt: skip

    composer = offered(staff, italian)

    assert composer.index("summer_sale") < composer.index("order_confirmation") < composer.index("reservation_confirmation")


# --- a header's image or document as an attached file ---------------------------------------------


@pytest.fixture
def invoice(account):
    """A utility template whose header is a document (the invoice), with one body variable."""
    return MessageTemplate.objects.create(
        business_account_id=WABA, name="invoice_ready", language="it", status="APPROVED", category="UTILITY", template_id="999",
        synced_at=timezone.now(), parameter_format="POSITIONAL",
        components=[{"type": "HEADER", "format": "DOCUMENT"}, {"type": "BODY", "text": "Ciao {{1}}, ecco la tua fattura."}],
    )  # fmt: skip


def send_with_file(staff, conversation, template, values: dict, file: SimpleUploadedFile):
    """The template form posted with a file (a multipart POST, as htmx makes it)."""
    return staff.post(f"/console/c/{conversation.pk}/template/send/", {"template": template.pk, **values, "header.file": file}, HTTP_HX_REQUEST="true")


def nothing_stored(media_root) -> bool:
    kept = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    return not Message.objects.filter(type=MessageType.TEMPLATE).exists() and not MediaFile.objects.exists() and not kept


@pytest.mark.django_db(transaction=True)
def test_a_document_header_is_an_attached_pdf_uploaded_by_the_delivery_and_shown_in_the_thread(invoice, closed, staff, graph_api):
    meta = FakeMeta(graph_api)

    response = send_with_file(staff, closed, invoice, {"body.1": "Giulia"}, SimpleUploadedFile("Fattura 2026-114.pdf", PDF, "application/pdf"))

    assert response.status_code == 200 and response["HX-Retarget"] == "#composer"
    message = Message.objects.get(type=MessageType.TEMPLATE)
    media = MediaFile.objects.get(message=message)
    assert (media.state, media.mime_type, media.filename, media.file.read()) == (MediaState.STORED, "application/pdf", "Fattura 2026-114.pdf", PDF)
    # Kept as sent: the header names the attached file until the delivery has uploaded it.
    assert message.payload["template"]["components"][0] == {
        "type": "header", "parameters": [{"type": "document", "document": {"id": HEADER_FILE_ID, "filename": "Fattura 2026-114.pdf"}}],
    }  # fmt: skip
    assert message.payload["template"]["values"] == {"header.link": "", "header.file": "Fattura 2026-114.pdf", "body.1": "Giulia"}

    assert deliver(message.pk) == "sent"

    (upload,) = meta.uploads
    assert upload["form"] == {"messaging_product": "whatsapp", "type": "application/pdf"}
    assert (upload["filename"], upload["file_type"], upload["content"]) == ("Fattura 2026-114.pdf", "application/pdf", PDF)
    assert upload["authorization"] == f"Bearer {ACCESS_TOKEN}"
    (sent,) = meta.sends
    assert sent["type"] == "template" and sent["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "document", "document": {"id": "media.1", "filename": "Fattura 2026-114.pdf"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Giulia"}]},
    ]  # fmt: skip
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and MediaFile.objects.get(message=message).provider_media_id == "media.1"
    # The thread: the document above the text the customer reads, downloadable by staff only.
    html = staff.get(f"/console/c/{closed.pk}/").content.decode()
    bubble = html[html.index(f'id="msg-{message.pk}"') :]
    src = f"/console/c/{closed.pk}/media/{message.pk}/"
    assert bubble.index("Fattura 2026-114.pdf") < bubble.index(f'href="{src}"') < bubble.index("Ciao Giulia, ecco la tua fattura.")
    download = staff.get(src)
    assert b"".join(download.streaming_content) == PDF and download["Content-Disposition"].startswith("attachment")


@pytest.mark.django_db(transaction=True)
def test_an_image_header_is_an_attached_png_sent_by_its_id(synced, closed, staff, graph_api):
    meta = FakeMeta(graph_api)
    template = synced["reservation_confirmation"]
    values = {"body.number_of_guests": "4", "body.day": "sabato", "body.date": "30 agosto", "body.time": "19:30"}

    send_with_file(staff, closed, template, values, SimpleUploadedFile("tavolo.png", PNG, "image/png"))
    message = Message.objects.get(type=MessageType.TEMPLATE)
    assert deliver(message.pk) == "sent"

    assert [u["file_type"] for u in meta.uploads] == ["image/png"]
    assert meta.sends[0]["template"]["components"][0] == {"type": "header", "parameters": [{"type": "image", "image": {"id": "media.1"}}]}
    html = staff.get(f"/console/c/{closed.pk}/").content.decode()
    bubble = html[html.index(f'id="msg-{message.pk}"') :]
    assert bubble.index(f'<img class="media-thumb" src="/console/c/{closed.pk}/media/{message.pk}/"') < bubble.index("Your reservation for 4")


@pytest.mark.parametrize(
    ("template_name", "content", "name", "content_type", "says"),
    [
        ("reservation_confirmation", PDF, "fattura.pdf", "application/pdf",
         "The header takes an image (JPEG, PNG): %(name)s is a document."),
        ("invoice_ready", PNG, "foto.png", "image/png", "The header takes a document: %(name)s is an image."),
        ("invoice_ready", b"MZ\x90\x00\x03\x00", "fattura.pdf", "application/pdf",
         "%(name)s cannot be sent on WhatsApp: attach an image (JPEG, PNG) or a document (PDF, Word, Excel, PowerPoint, text)."),
    ],
)  # fmt: skip
def test_a_file_the_header_cannot_take_is_refused_beside_the_field_and_nothing_is_stored(
    synced, invoice, closed, staff, media_root, template_name, content, name, content_type, says
):
    template = MessageTemplate.objects.get(name=template_name)
    values = {"body.1": "Giulia", "body.number_of_guests": "4", "body.day": "sabato", "body.date": "30 agosto", "body.time": "19:30"}

    response = send_with_file(staff, closed, template, values, SimpleUploadedFile(name, content, content_type))

    html = response.content.decode()
    assert response["HX-Retarget"] == "#template-form"
    error = html[html.index('data-error="header.file"') :]
    assert escape(it(says, name=name)) in error[:400]
    assert nothing_stored(media_root)


def test_a_link_and_a_file_both_given_are_refused_and_neither_alone_is_missing(invoice, closed, staff, media_root):
    both = send_with_file(staff, closed, invoice, {"body.1": "Giulia", "header.link": "https://example.com/f.pdf"},
                          SimpleUploadedFile("fattura.pdf", PDF, "application/pdf"))  # fmt: skip
    neither = staff.post(f"/console/c/{closed.pk}/template/send/", {"template": invoice.pk, "body.1": "Giulia"}, HTTP_HX_REQUEST="true")

    assert escape(it("Give the header a link or attach a file, not both.")) in both.content.decode()
    assert 'data-error="header.link"' in neither.content.decode()
    assert escape(it("Give the header an https link or attach a file.")) in neither.content.decode()
    assert nothing_stored(media_root)


@pytest.mark.django_db(transaction=True)
def test_a_retry_after_a_send_failure_names_the_file_uploaded_before(invoice, closed, staff, graph_api, settings, redis_queue):
    settings.WHATSAPP_RETRY_BASE_SECONDS = 0
    meta = FakeMeta(graph_api)
    meta.send_failures = [503]
    send_with_file(staff, closed, invoice, {"body.1": "Giulia"}, SimpleUploadedFile("fattura.pdf", PDF, "application/pdf"))
    message = Message.objects.get(type=MessageType.TEMPLATE)

    assert deliver(message.pk) == "retry"
    assert deliver(message.pk) == "sent"

    assert (len(meta.uploads), len(meta.sends)) == (1, 2)
    assert [s["template"]["components"][0]["parameters"][0]["document"]["id"] for s in meta.sends] == ["media.1", "media.1"]


@pytest.mark.django_db(transaction=True)
def test_a_permanent_upload_refusal_fails_the_template_with_metas_reason_and_sends_nothing(invoice, closed, staff, graph_api):
    graph_api.expect_request(MEDIA_PATH, method="POST").respond_with_response(
        Response(json.dumps({"error": {"message": "(#131053) Media upload error", "code": 131053}}), status=400, content_type="application/json")
    )
    send_with_file(staff, closed, invoice, {"body.1": "Giulia"}, SimpleUploadedFile("fattura.pdf", PDF, "application/pdf"))
    message = Message.objects.get(type=MessageType.TEMPLATE)

    assert deliver(message.pk) == "failed"

    message.refresh_from_db()
    assert (message.status, message.error_code, message.error_title) == (MessageStatus.FAILED, "131053", "The media could not be uploaded.")
    assert all(request.path == MEDIA_PATH for request, _ in graph_api.log)


@pytest.mark.django_db(transaction=True)
def test_a_template_naming_a_file_it_no_longer_has_fails_for_good_without_sending(invoice, closed, graph_api):
    message = actions.conversation_template_send(
        conversation_id=closed.pk, user=UserFactory(username="anna"), template_id=invoice.pk, values={"body.1": "Giulia"},
        attachment=attachment_check(SimpleUploadedFile("fattura.pdf", PDF, "application/pdf")),
    )  # fmt: skip
    MediaFile.objects.filter(message=message).delete()

    assert deliver(message.pk) == "failed"
    assert graph_api.log == []


def test_the_preview_shows_the_chosen_file_by_its_name(invoice, closed, staff):
    form = staff.get(f"/console/c/{closed.pk}/template/?template={invoice.pk}", HTTP_HX_REQUEST="true").content.decode()
    html = staff.post(f"/console/c/{closed.pk}/template/preview/", {"template": invoice.pk, "body.1": "Giulia",
                                                                    "header.file_name": "Fattura 2026-114.pdf"}).content.decode()  # fmt: skip

    assert 'type="file" name="header.file"' in form and 'enctype="multipart/form-data"' in form and 'hx-params="not header.file"' in form
    assert "</svg> Fattura 2026-114.pdf" in html and "Ciao Giulia, ecco la tua fattura." in html
