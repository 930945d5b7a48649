import json
import logging
import time

import pytest
from werkzeug import Response

from conversations.models import Message, MessageStatus
from conversations.services.outbound import message_deliver, message_send_text
from conversations.whatsapp_client import WhatsAppClient, WhatsAppError

from tests.conversations.factories import ACCESS_TOKEN, ConversationFactory

pytestmark = pytest.mark.django_db

MESSAGES_PATH = "/v23.0/106540352242922/messages"


def graph_error(code: int, message: str, status: int = 400, details: str = "", headers: dict | None = None) -> Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "error_data": {"details": details}, "fbtrace_id": "x"}}
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def sent(wamid: str = "wamid.out1") -> dict:
    return {"messaging_product": "whatsapp", "contacts": [{"input": "1", "wa_id": "1"}], "messages": [{"id": wamid}]}


@pytest.fixture
def client_for(graph_api):
    return WhatsAppClient(phone_number_id="106540352242922", access_token=f"  {ACCESS_TOKEN}\n", api_version="v23.0")


@pytest.fixture
def outbound(db):
    conversation = ConversationFactory(profile__wa_id="393331234567")
    return message_send_text(conversation=conversation, text="Ciao! Come posso aiutarti?")


def test_it_sends_a_text_with_the_token_in_the_header_only(graph_api, client_for):
    graph_api.expect_request(
        MESSAGES_PATH,
        method="POST",
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},  # stripped of the stray spaces
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "393331234567",
            "type": "text",
            "text": {"body": "Ciao", "preview_url": False},
            "context": {"message_id": "wamid.in"},
        },
    ).respond_with_json(sent("wamid.ok"))

    assert client_for.send_text(to="393331234567", body="Ciao", reply_to="wamid.in") == "wamid.ok"
    assert ACCESS_TOKEN not in graph_api.log[0][0].url
    assert ACCESS_TOKEN not in repr(client_for)


def test_it_marks_read_with_a_typing_indicator(graph_api, client_for):
    graph_api.expect_request(
        MESSAGES_PATH,
        method="POST",
        json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in", "typing_indicator": {"type": "text"}},
    ).respond_with_json({"success": True})

    client_for.mark_read(wamid="wamid.in")
    graph_api.check_assertions()


@pytest.mark.parametrize(
    ("response", "permanent", "rate_limited"),
    [
        (graph_error(130429, "Rate limit hit", status=400), False, True),
        (graph_error(131056, "Pair rate limit", status=400), False, True),
        (graph_error(4, "Application request limit reached", status=400), False, True),
        (Response("busy", status=429, headers={"Retry-After": "7"}), False, True),
        (Response("oops", status=502), False, False),
        (graph_error(131000, "Something went wrong", status=500), False, False),
        (graph_error(131047, "Re-engagement message", details="24 hours have passed"), True, False),
        (graph_error(190, "Error validating access token: Session has expired", status=401), True, False),
        (graph_error(131026, "Message undeliverable"), True, False),
        (graph_error(100, "Invalid parameter"), True, False),
    ],
)
def test_errors_say_whether_a_retry_can_help(graph_api, client_for, response, permanent, rate_limited):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(response)

    with pytest.raises(WhatsAppError) as caught:
        client_for.send_text(to="1", body="x")

    assert caught.value.permanent is permanent
    assert caught.value.rate_limited is rate_limited


def test_retry_after_is_read(graph_api, client_for):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("busy", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(WhatsAppError) as caught:
        client_for.send_text(to="1", body="x")
    assert caught.value.retry_after == 7


def test_a_timeout_is_a_temporary_error(graph_api, client_for, settings):
    settings.WHATSAPP_HTTP_READ_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return Response(json.dumps(sent()), content_type="application/json")

    graph_api.expect_request(MESSAGES_PATH).respond_with_handler(slow)
    with pytest.raises(WhatsAppError) as caught:
        client_for.send_text(to="1", body="x")
    assert not caught.value.permanent and "Timed out" in str(caught.value)
    time.sleep(0.5)  # let the slow handler finish, so its log entry stays in this test


def test_an_unreachable_graph_api_is_a_temporary_error(settings, client_for):
    settings.WHATSAPP_API_BASE_URL = "http://127.0.0.1:9"
    client = WhatsAppClient(phone_number_id="1", access_token=ACCESS_TOKEN)
    with pytest.raises(WhatsAppError) as caught:
        client.send_text(to="1", body="x")
    assert not caught.value.permanent


def test_delivery_stores_the_wamid_and_marks_sent(graph_api, outbound):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json(sent("wamid.sent1"))

    assert message_deliver(message_id=outbound.pk).outcome == "sent"

    outbound.refresh_from_db()
    assert outbound.wamid == "wamid.sent1" and outbound.status == MessageStatus.SENT and outbound.sent_at
    assert outbound.conversation.revision >= 1
    # A second run (redelivered task, sweeper) sends nothing more.
    assert message_deliver(message_id=outbound.pk).outcome == "skipped"
    assert len(graph_api.log) == 1


def test_a_rate_limit_is_retried_later_honouring_retry_after(graph_api, outbound):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("busy", status=429, headers={"Retry-After": "7"}))

    result = message_deliver(message_id=outbound.pk)

    assert result.outcome == "retry" and result.retry_in >= 7
    outbound.refresh_from_db()
    assert outbound.status == MessageStatus.PENDING and outbound.attempts == 1
    assert outbound.locked_until is not None  # parked until the retry is due
    # Meanwhile a second worker (or the sweeper) does not jump the queue.
    assert message_deliver(message_id=outbound.pk).outcome == "skipped"


def test_backoff_grows_exponentially_and_is_capped(settings):
    from conversations.services.outbound import backoff_seconds

    settings.WHATSAPP_RETRY_BASE_SECONDS = 1
    settings.WHATSAPP_RETRY_MAX_SECONDS = 60
    assert [backoff_seconds(attempt=n) for n in (1, 2, 3, 4, 10)] == [1, 2, 4, 8, 60]
    assert backoff_seconds(attempt=1, retry_after=30) == 30


def test_retries_are_bounded(graph_api, outbound, settings):
    settings.WHATSAPP_SEND_MAX_ATTEMPTS = 3
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("down", status=503))

    outcomes = []
    for _ in range(5):
        Message.objects.filter(pk=outbound.pk).update(locked_until=None)  # as if the countdown had passed
        outcomes.append(message_deliver(message_id=outbound.pk).outcome)

    assert outcomes == ["retry", "retry", "failed", "skipped", "skipped"]
    outbound.refresh_from_db()
    assert outbound.status == MessageStatus.FAILED and outbound.attempts == 3
    assert len(graph_api.log) == 3


def test_a_permanent_error_is_not_retried_and_is_explained_on_the_message(graph_api, outbound):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(
        graph_error(131047, "Re-engagement message", details="Message failed to send because more than 24 hours have passed")
    )

    assert message_deliver(message_id=outbound.pk).outcome == "failed"

    outbound.refresh_from_db()
    assert outbound.status == MessageStatus.FAILED and outbound.attempts == 1
    assert outbound.error_code == "131047"
    assert "24 hours" in outbound.error_title
    assert "24 hours have passed" in outbound.error_detail


def test_the_access_token_never_reaches_logs_or_errors(graph_api, outbound, caplog):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(
        graph_error(190, f"Invalid OAuth access token - Cannot parse access token: {ACCESS_TOKEN}", status=401)
    )
    caplog.set_level(logging.DEBUG)

    message_deliver(message_id=outbound.pk)

    outbound.refresh_from_db()
    assert outbound.error_code == "190" and "expired or is invalid" in outbound.error_title
    assert ACCESS_TOKEN not in outbound.error_detail + outbound.error_title
    handler_output = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    from whatsbot.logging import redact

    assert ACCESS_TOKEN not in redact(handler_output)
    assert all(ACCESS_TOKEN not in str(r.msg) for r in caplog.records if r.name.startswith("conversations"))


def test_the_redaction_filter_scrubs_tokens_from_records(settings):
    from whatsbot.logging import RedactSecretsFilter

    settings.WHATSAPP_ACCESS_TOKEN = ACCESS_TOKEN
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s and Bearer abc.def", (f"token={ACCESS_TOKEN}",), None)
    RedactSecretsFilter().filter(record)
    assert ACCESS_TOKEN not in record.getMessage() and "abc.def" not in record.getMessage()


def test_it_sends_media_and_templates(graph_api, client_for):
    graph_api.expect_ordered_request(
        MESSAGES_PATH,
        json={
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "1", "type": "document",
            "document": {"id": "media-1", "caption": "Fattura", "filename": "fattura.pdf"},
        },
    ).respond_with_json(sent("wamid.doc"))  # fmt: skip
    graph_api.expect_ordered_request(
        MESSAGES_PATH,
        json={
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "1", "type": "template",
            "template": {"name": "order_update", "language": {"code": "it"}, "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1"}]}]},
        },
    ).respond_with_json(sent("wamid.tpl"))  # fmt: skip

    assert client_for.send_media(to="1", kind="document", media_id="media-1", caption="Fattura", filename="fattura.pdf") == "wamid.doc"
    assert (
        client_for.send_template(
            to="1", name="order_update", language="it", components=[{"type": "body", "parameters": [{"type": "text", "text": "A-1"}]}]
        )
        == "wamid.tpl"
    )
    graph_api.check_assertions()
