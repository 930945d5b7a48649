"""Meta's Graph API client (`integrations.meta.graph.GraphClient`), async on aiohttp, against a
fake Graph API on loopback (pytest-httpserver): what it sends, and how every kind of failure
becomes a `ProviderError` that says whether trying again can help."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from django.conf import settings
from werkzeug import Response

from integrations import http
from integrations.base import Identity, MediaExpired, MediaRefused, Outgoing, ProviderError
from integrations.meta import graph
from integrations.meta.graph import GraphClient
from tests.conversations.factories import ACCESS_TOKEN, PHONE_NUMBER_ID

VERSION = settings.WHATSAPP_API_VERSION
MESSAGES_PATH = f"/{VERSION}/{PHONE_NUMBER_ID}/messages"


def run(call):
    """Await `call()` on a loop of its own, closing the loop's HTTP session after, as
    `conversations.runtime.run` does."""

    async def main():
        try:
            return await call()
        finally:
            await http.close()

    return asyncio.run(main())


def graph_error(code: int, message: str, status: int = 400, details: str = "", headers: dict | None = None, **extra) -> Response:
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "error_data": {"details": details}, "fbtrace_id": "x", **extra}}
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def sent(wamid: str = "wamid.out1") -> dict:
    return {"messaging_product": "whatsapp", "contacts": [{"input": "1", "wa_id": "1"}], "messages": [{"id": wamid}]}


@pytest.fixture
def client(graph_api) -> GraphClient:
    # The stray whitespace of a pasted token is not sent.
    return GraphClient(phone_number_id=PHONE_NUMBER_ID, access_token=f"  {ACCESS_TOKEN}\n")


def send_text(client: GraphClient, text: str = "x", **fields) -> str:
    return run(lambda: client.send(Outgoing(type="text", text=text, **fields), to=Identity(phone="393331234567")))


def refusal(client: GraphClient) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        send_text(client)
    return caught.value


# --- what it sends ------------------------------------------------------------------------------


def test_it_sends_a_text_with_the_token_in_the_header_only(graph_api, client):
    graph_api.expect_request(
        MESSAGES_PATH,
        method="POST",
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "393331234567",
            "type": "text",
            "text": {"body": "Ciao", "preview_url": False},
            "context": {"message_id": "wamid.in"},
        },
    ).respond_with_json(sent("wamid.ok"))

    assert send_text(client, "Ciao", reply_to="wamid.in") == "wamid.ok"
    request = graph_api.log[0][0]
    assert ACCESS_TOKEN not in request.url
    assert ACCESS_TOKEN not in repr(client)


@pytest.mark.parametrize(
    ("to", "address"),
    [
        (Identity(phone="393331234567", user_id="IT.13491208655302741918", username="@giulia"), {"to": "393331234567"}),
        (Identity(user_id="IT.13491208655302741918", username="@giulia"), {"recipient": "IT.13491208655302741918"}),
    ],
)
def test_it_sends_to_the_number_when_known_and_to_the_bsuid_otherwise(graph_api, client, to, address):
    text = {"type": "text", "text": {"body": "Ciao", "preview_url": False}}
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", **address, **text}
    graph_api.expect_request(MESSAGES_PATH, method="POST", json=body).respond_with_json(sent("wamid.addressed"))

    assert run(lambda: client.send(Outgoing(type="text", text="Ciao"), to=to)) == "wamid.addressed"


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ({"to": "393331234567", "recipient": "IT.13491208655302741918"}, "exactly one"),
        ({}, "exactly one"),
        ({"recipient": "393331234567"}, "'recipient' must be a business-scoped user id"),
        ({"to": "IT.13491208655302741918"}, "'to' must be a phone number"),
    ],
)
def test_the_fake_graph_api_refuses_a_send_meta_would_refuse(graph_api, address, error):
    graph_api.expect_request(MESSAGES_PATH).respond_with_json(sent())
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", **address, "type": "text", "text": {"body": "x"}}
    url = graph_api.url_for(MESSAGES_PATH)
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)

    assert refused.value.code == 400 and json.loads(refused.value.read())["error"]["code"] == 100
    assert len(graph_api.misaddressed) == 1 and error in graph_api.misaddressed[0]
    graph_api.misaddressed.clear()  # seen: the fixture fails a test on any it did not expect


def test_the_channels_api_version_and_base_url_are_used(graph_api, settings):
    pinned = f"v{int(settings.WHATSAPP_API_VERSION[1:].split('.')[0]) - 2}.0"  # a channel pinned to an older version
    graph_api.expect_request(f"/{pinned}/{PHONE_NUMBER_ID}/messages").respond_with_json(sent("wamid.pinned"))
    client = GraphClient(phone_number_id=PHONE_NUMBER_ID, access_token=ACCESS_TOKEN, api_version=pinned)

    assert send_text(client) == "wamid.pinned"
    assert client.api_version == pinned != settings.WHATSAPP_API_VERSION


def test_it_marks_read_with_a_typing_indicator_or_without(graph_api, client):
    graph_api.expect_ordered_request(
        MESSAGES_PATH,
        method="POST",
        json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in", "typing_indicator": {"type": "text"}},
    ).respond_with_json({"success": True})
    graph_api.expect_ordered_request(
        MESSAGES_PATH, method="POST", json={"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in2"}
    ).respond_with_json({"success": True})

    run(lambda: client.mark_read("wamid.in"))
    run(lambda: client.mark_read("wamid.in2", typing=False))

    graph_api.check_assertions()


def test_it_sends_media_and_templates(graph_api, client):
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "1"}
    components = [{"type": "body", "parameters": [{"type": "text", "text": "A-1"}]}]
    graph_api.expect_ordered_request(
        MESSAGES_PATH, json={**base, "type": "document", "document": {"id": "media-1", "caption": "Fattura", "filename": "fattura.pdf"}}
    ).respond_with_json(sent("wamid.doc"))
    graph_api.expect_ordered_request(
        MESSAGES_PATH, json={**base, "type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "Foto"}}
    ).respond_with_json(sent("wamid.img"))
    graph_api.expect_ordered_request(MESSAGES_PATH, json={**base, "type": "audio", "audio": {"id": "media-2"}}).respond_with_json(
        sent("wamid.audio")
    )
    graph_api.expect_ordered_request(
        MESSAGES_PATH, json={**base, "type": "template", "template": {"name": "order_update", "language": {"code": "it"}, "components": components}}
    ).respond_with_json(sent("wamid.tpl"))

    async def send_all():
        return [
            await client.send(Outgoing(type="document", text="Fattura", media={"id": "media-1", "filename": "fattura.pdf"}), to=Identity(phone="1")),
            await client.send(Outgoing(type="image", text="Foto", media={"link": "https://example.com/a.jpg"}), to=Identity(phone="1")),
            await client.send(Outgoing(type="audio", text="an audio has no caption", media={"id": "media-2"}), to=Identity(phone="1")),
            await client.send(
                Outgoing(type="template", template={"name": "order_update", "language": {"code": "it"}, "components": components}), to=Identity(phone="1")
            ),
        ]

    assert run(send_all) == ["wamid.doc", "wamid.img", "wamid.audio", "wamid.tpl"]
    graph_api.check_assertions()


def test_a_type_it_cannot_send_is_refused_before_any_request(graph_api, client):
    with pytest.raises(ProviderError) as caught:
        run(lambda: client.send(Outgoing(type="location"), to=Identity(phone="1")))

    assert caught.value.permanent and "location" in str(caught.value)
    assert graph_api.log == []


def test_an_answer_without_a_message_id_is_a_temporary_error(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_json({"messaging_product": "whatsapp", "messages": []})

    error = refusal(client)

    assert not error.permanent and "without a message id" in str(error)


def test_calls_share_the_loops_kept_connections(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_json(sent())

    async def three_sends_and_the_session():
        for _ in range(3):
            await client.send(Outgoing(type="text", text="x"), to=Identity(phone="1"))
        return http.session()

    session = run(three_sends_and_the_session)

    assert session.closed  # closed with its loop's work
    assert len(graph_api.log) == 3


# --- errors: temporary or permanent --------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "permanent", "code"),
    [
        # Meta's rate limits and transient faults, whatever the HTTP status says.
        (graph_error(130429, "Rate limit hit", status=400), False, 130429),
        (graph_error(131056, "Pair rate limit", status=400), False, 131056),
        (graph_error(4, "Application request limit reached", status=400), False, 4),
        (graph_error(80007, "Rate limit issues", status=400), False, 80007),
        (graph_error(131016, "Service unavailable", status=400), False, 131016),
        (graph_error(133004, "Server temporarily unavailable", status=400), False, 133004),
        (graph_error(2, "Service temporarily unavailable", status=400), False, 2),
        # Any 429 or 5xx, with or without Meta's error body.
        (Response("busy", status=429), False, None),
        (Response("oops", status=502), False, None),
        (Response("", status=503), False, None),
        (graph_error(131000, "Something went wrong", status=500), False, 131000),
        # What no retry can change.
        (graph_error(131047, "Re-engagement message", details="24 hours have passed"), True, 131047),
        (graph_error(190, "Error validating access token: Session has expired", status=401), True, 190),
        (graph_error(131026, "Message undeliverable"), True, 131026),
        (graph_error(100, "Invalid parameter"), True, 100),
        (graph_error(368, "Temporarily blocked for policies violations", status=403), True, 368),
        (Response("Not Found", status=404), True, None),
    ],
)
def test_errors_say_whether_a_retry_can_help(graph_api, client, response, permanent, code):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(response)

    error = refusal(client)

    assert error.permanent is permanent
    assert (error.code, error.http_status) == (code, response.status_code)
    assert str(error).startswith(f"Graph API error {code or response.status_code}")


def test_an_error_carries_metas_title_details_and_a_plain_reason_for_staff(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(
        graph_error(131047, "Re-engagement message", details="Message failed to send because more than 24 hours have passed",
                    error_user_title="Message not sent")  # fmt: skip
    )

    error = refusal(client)

    assert error.title == "Message not sent"
    assert error.detail == "Message failed to send because more than 24 hours have passed"
    assert error.reason == "More than 24 hours since the customer's last message: only a template can be sent."
    assert error.message == "Graph API error 131047: Re-engagement message"


def test_without_a_plain_reason_the_reason_is_metas_title(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(graph_error(131009, "Parameter value is not valid"))

    error = refusal(client)

    assert error.permanent and error.reason_text == ""
    assert error.reason == "OAuthException"  # the error's type when Meta gives no user title


def test_an_error_body_that_is_not_metas_still_gives_the_http_status(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("<html>Bad gateway</html>", status=502, content_type="text/html"))

    error = refusal(client)

    assert (error.code, error.http_status, error.permanent) == (None, 502, False)
    assert str(error) == "Graph API error 502: BAD GATEWAY"


# --- errors: how long to wait ---------------------------------------------------------------------


def test_retry_after_in_seconds_is_read(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("busy", status=429, headers={"Retry-After": "7"}))

    assert refusal(client).retry_after == 7.0


def test_retry_after_as_an_http_date_is_read_as_seconds_from_now(graph_api, client):
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(
        Response("busy", status=503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    )

    retry_after = refusal(client).retry_after

    assert 110 <= retry_after <= 120


@pytest.mark.parametrize(("header", "expected"), [("-5", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), ("", None)])
def test_a_retry_after_in_the_past_is_now_and_one_unreadable_is_none(graph_api, client, header, expected):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(Response("busy", status=429, headers={"Retry-After": header}))

    assert refusal(client).retry_after == expected


def test_a_rate_limit_error_from_meta_carries_retry_after_too(graph_api, client):
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(graph_error(130429, "Rate limit hit", headers={"Retry-After": "30"}))

    error = refusal(client)

    assert not error.permanent and error.retry_after == 30.0


# --- errors: transport -----------------------------------------------------------------------------


def test_a_timeout_is_a_temporary_error(graph_api, client, settings):
    settings.WHATSAPP_HTTP_READ_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return Response(json.dumps(sent()), content_type="application/json")

    graph_api.expect_request(MESSAGES_PATH).respond_with_handler(slow)

    error = refusal(client)

    assert not error.permanent and "Timed out" in str(error)
    time.sleep(0.5)  # let the slow handler finish, so its log entry stays in this test


def test_an_unreachable_graph_api_is_a_temporary_error(settings):
    settings.WHATSAPP_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    client = GraphClient(phone_number_id="1", access_token=ACCESS_TOKEN)

    error = refusal(client)

    assert not error.permanent and str(error).startswith("Could not reach the Graph API")


# --- the token is never in an error -----------------------------------------------------------------


def test_the_access_token_never_reaches_an_errors_text(graph_api, client, settings, caplog):
    settings.WHATSAPP_ACCESS_TOKEN = ""  # not known to the settings: the channel's own token
    graph_api.expect_request(MESSAGES_PATH).respond_with_response(
        graph_error(
            190, f"Invalid OAuth access token - Cannot parse access token: {ACCESS_TOKEN}", status=401,
            details=f"token {ACCESS_TOKEN} rejected", error_user_title=f"Bearer {ACCESS_TOKEN}",
        )
    )  # fmt: skip
    caplog.set_level(logging.DEBUG)

    error = refusal(client)

    texts = [str(error), error.message, error.title, error.detail, error.reason, repr(error)]
    assert all(ACCESS_TOKEN not in text for text in texts), texts
    assert error.code == 190 and error.reason_text.startswith("The WhatsApp access token has expired")
    assert error.__cause__ is None and error.__context__ is None  # nothing chained that could carry the request
    assert ACCESS_TOKEN not in caplog.text


def test_a_transport_failure_names_no_request_detail(settings):
    settings.WHATSAPP_API_BASE_URL = "http://127.0.0.1:9"
    client = GraphClient(phone_number_id="1", access_token=ACCESS_TOKEN)

    error = refusal(client)

    assert ACCESS_TOKEN not in str(error) + repr(error)
    assert error.__cause__ is None and error.__suppress_context__


# --- media a customer sent ------------------------------------------------------------------------


MEDIA = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100


@pytest.fixture
def media_url(graph_api) -> str:
    """Meta's look-up answers a URL on its CDN (here: the same fake), valid for 5 minutes."""
    return graph_api.url_for("/cdn/media-1")


def media_info(url: str, content: bytes = MEDIA, **overrides) -> dict:
    return {
        "messaging_product": "whatsapp", "url": url, "mime_type": "image/png", "sha256": hashlib.sha256(content).hexdigest(),
        "file_size": len(content), "id": "media-1", **overrides,
    }  # fmt: skip


def expect_lookup(graph_api, info: dict) -> None:
    graph_api.expect_ordered_request(
        f"/{VERSION}/media-1", method="GET", query_string={"phone_number_id": PHONE_NUMBER_ID},
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
    ).respond_with_json(info)  # fmt: skip


def fetch(client: GraphClient):
    return run(lambda: client.fetch_media("media-1"))


def fetch_refused(client: GraphClient) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        fetch(client)
    return caught.value


def test_a_media_item_is_looked_up_then_downloaded_with_the_token_and_checked(graph_api, client, media_url):
    expect_lookup(graph_api, media_info(media_url))
    graph_api.expect_ordered_request("/cdn/media-1", method="GET", headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}).respond_with_data(
        MEDIA, content_type="application/octet-stream"
    )

    media = fetch(client)

    graph_api.check_assertions()
    assert media.content == MEDIA
    assert media.mime_type == "image/png"  # Meta's word for it, not the CDN's
    assert media.sha256 == hashlib.sha256(MEDIA).hexdigest()


def test_a_large_media_item_arrives_whole_in_however_many_chunks(graph_api, client, media_url):
    large = bytes(range(256)) * 8192  # 2 MiB: many reads of the socket
    expect_lookup(graph_api, media_info(media_url, content=large))

    def chunked(request):
        return Response((large[i : i + 65536] for i in range(0, len(large), 65536)), direct_passthrough=True)

    graph_api.expect_ordered_request("/cdn/media-1").respond_with_handler(chunked)

    media = fetch(client)

    assert len(media.content) == len(large) and media.content == large


def test_without_a_mime_type_in_the_look_up_the_downloads_content_type_is_used(graph_api, client, media_url):
    info = media_info(media_url)
    del info["mime_type"]
    expect_lookup(graph_api, info)
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA, content_type="image/webp")

    assert fetch(client).mime_type == "image/webp"


def test_a_sha256_in_base64_as_metas_webhooks_give_it_is_checked_too(graph_api, client, media_url, meta_example):
    import base64

    webhook_sha256 = meta_example("Image Message")["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["sha256"]
    assert base64.b64decode(webhook_sha256, validate=True)  # Meta's own example: base64, not hex
    expect_lookup(graph_api, media_info(media_url, sha256=base64.b64encode(hashlib.sha256(MEDIA).digest()).decode()))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    assert fetch(client).content == MEDIA


def test_bytes_that_do_not_match_a_base64_sha256_are_refused(graph_api, client, media_url):
    import base64

    expect_lookup(graph_api, media_info(media_url, sha256=base64.b64encode(hashlib.sha256(b"other").digest()).decode()))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    assert "sha256" in str(fetch_refused(client))


def test_bytes_that_do_not_match_the_sha256_are_refused_for_good(graph_api, client, media_url):
    expect_lookup(graph_api, media_info(media_url, content=b"what Meta meant to send"))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    error = fetch_refused(client)

    assert isinstance(error, MediaRefused) and error.permanent and "sha256" in str(error)


def test_a_look_up_without_a_url_is_a_temporary_error(graph_api, client):
    expect_lookup(graph_api, {"id": "media-1", "messaging_product": "whatsapp"})

    error = fetch_refused(client)

    assert not error.permanent and "without a media URL" in str(error)


def test_a_look_up_meta_refuses_is_mapped_as_any_call(graph_api, client):
    graph_api.expect_request(f"/{VERSION}/media-1").respond_with_response(graph_error(100, "Unsupported get request", status=400))

    error = fetch_refused(client)

    assert error.permanent and error.code == 100


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (403, True), (500, False), (503, False)])
def test_a_failing_download_says_whether_a_retry_can_help(graph_api, client, media_url, status, permanent):
    expect_lookup(graph_api, media_info(media_url))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_response(Response("no", status=status))

    error = fetch_refused(client)

    assert error.permanent is permanent and error.http_status == status


def test_a_media_item_larger_than_the_limit_is_refused_by_its_length(graph_api, client, media_url, monkeypatch):
    monkeypatch.setattr(graph, "MEDIA_MAX_BYTES", len(MEDIA) - 1)
    expect_lookup(graph_api, media_info(media_url))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    error = fetch_refused(client)

    assert error.permanent and "larger than the limit" in str(error)


def test_a_media_item_larger_than_the_limit_without_a_length_is_refused_once_read_past_it(graph_api, client, media_url, monkeypatch):
    monkeypatch.setattr(graph, "MEDIA_MAX_BYTES", len(MEDIA) - 1)
    expect_lookup(graph_api, media_info(media_url))

    def chunked(request):
        return Response((MEDIA[i : i + 64] for i in range(0, len(MEDIA), 64)), direct_passthrough=True)

    graph_api.expect_ordered_request("/cdn/media-1").respond_with_handler(chunked)

    error = fetch_refused(client)

    assert error.permanent and "larger than the limit" in str(error)


def test_a_download_that_times_out_is_temporary(graph_api, client, media_url, settings):
    settings.WHATSAPP_HTTP_READ_TIMEOUT = 0.2
    expect_lookup(graph_api, media_info(media_url))

    def slow(request):
        time.sleep(0.6)
        return Response(MEDIA)

    graph_api.expect_ordered_request("/cdn/media-1").respond_with_handler(slow)

    error = fetch_refused(client)

    assert not error.permanent and "Timed out downloading" in str(error)
    time.sleep(0.5)


def test_the_webhooks_url_is_tried_first_with_the_token_and_no_look_up(graph_api, client, media_url):
    graph_api.expect_ordered_request("/cdn/media-1", method="GET", headers={"Authorization": f"Bearer {ACCESS_TOKEN}"}).respond_with_data(
        MEDIA, content_type="image/png"
    )

    media = run(lambda: client.fetch_media("media-1", url=media_url, sha256=hashlib.sha256(MEDIA).hexdigest()))

    assert media.content == MEDIA and media.mime_type == "image/png"
    assert [r.path for r, _ in graph_api.log] == ["/cdn/media-1"]


def test_a_webhook_url_that_ran_out_falls_back_to_the_media_id(graph_api, client, media_url):
    graph_api.expect_ordered_request("/cdn/old").respond_with_response(Response("gone", status=403))
    expect_lookup(graph_api, media_info(media_url))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    media = run(lambda: client.fetch_media("media-1", url=media_url.replace("media-1", "old")))

    graph_api.check_assertions()
    assert media.content == MEDIA


def test_a_media_id_meta_no_longer_has_is_expired_and_the_error_carries_no_token(graph_api, client):
    graph_api.expect_request(f"/{VERSION}/media-1").respond_with_response(graph_error(100, "Unsupported get request", status=400))

    error = fetch_refused(client)

    assert isinstance(error, MediaExpired) and error.permanent and error.reason == "WhatsApp no longer has this file."
    assert ACCESS_TOKEN not in f"{error} {error.detail} {error.title}"


def test_a_limit_smaller_than_the_item_refuses_it(graph_api, client, media_url):
    expect_lookup(graph_api, media_info(media_url))
    graph_api.expect_ordered_request("/cdn/media-1").respond_with_data(MEDIA)

    with pytest.raises(MediaRefused) as caught:
        run(lambda: client.fetch_media("media-1", max_bytes=len(MEDIA) - 1))
    assert caught.value.permanent and "larger than the limit" in str(caught.value)
