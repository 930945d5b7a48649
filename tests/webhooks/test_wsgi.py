"""The webhook's short route (`webhooks.wsgi`): Meta's POSTs answered by the WSGI entry point
itself, everything else (and any POST the full chain would treat differently) through Django."""

import io
import json
import sys

import pytest
from django.core.signals import request_finished, request_started

from conversations.models import Message
from integrations.meta.signature import sign
from webhooks.models import WebhookEvent

from tests.conversations.factories import APP_SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def wsgi_call(method: str, path: str, body: bytes = b"", headers: dict | None = None, query: str = "", application=None):
    if application is None:
        from whatsbot.wsgi import application

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": query,
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
        **(headers or {}),
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status[:3]), dict(response_headers)

    response = application(environ, start_response)
    answer["body"] = b"".join(response)
    response.close()
    return answer


def test_a_signed_post_through_the_wsgi_entry_point_is_stored_and_the_signals_are_sent(channel, meta_example, settings):
    settings.SECURE_SSL_REDIRECT = False
    seen = []
    started, finished = (lambda **kw: seen.append("started")), (lambda **kw: seen.append("finished"))
    request_started.connect(started)
    request_finished.connect(finished)
    try:
        body = json.dumps(meta_example("Text Message")).encode()
        answer = wsgi_call("POST", "/webhooks/whatsapp/", body, {"HTTP_X_HUB_SIGNATURE_256": sign(body, APP_SECRET)})
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert answer["status"] == 200
    assert answer["headers"]["Content-Length"] == str(len(answer["body"]))
    assert seen == ["started", "finished"]
    assert Message.objects.count() == 1
    assert WebhookEvent.objects.get().outcome == "processed"


def test_a_bad_signature_malformed_body_or_unknown_host_still_get_their_answers(channel, settings):
    settings.SECURE_SSL_REDIRECT = False
    assert wsgi_call("POST", "/webhooks/whatsapp/", b"{}", {"HTTP_X_HUB_SIGNATURE_256": "sha256=00"})["status"] == 403
    assert wsgi_call("POST", "/webhooks/whatsapp/", b"{nope", {"HTTP_X_HUB_SIGNATURE_256": sign(b"{nope", APP_SECRET)})["status"] == 400
    assert wsgi_call("POST", "/webhooks/whatsapp/", b"{}", {"HTTP_HOST": "evil.example"})["status"] == 400
    assert Message.objects.count() == 0


def test_plain_http_is_redirected_and_the_handshake_takes_the_full_chain(channel, settings):
    from webhooks.wsgi import WhatsbotWSGIHandler

    settings.SECURE_SSL_REDIRECT = True
    assert wsgi_call("POST", "/webhooks/whatsapp/", b"{}", application=WhatsbotWSGIHandler())["status"] == 301
    settings.SECURE_SSL_REDIRECT = False
    answer = wsgi_call("GET", "/webhooks/whatsapp/", query=f"hub.mode=subscribe&hub.verify_token={channel.verify_token}&hub.challenge=42")
    assert (answer["status"], answer["body"]) == (200, b"42")
    assert "X-Frame-Options" in answer["headers"]  # the middleware ran


def test_an_exception_in_the_short_route_is_a_logged_500_and_the_request_still_finishes(channel, settings, monkeypatch, caplog):
    from django.core.signals import got_request_exception

    from webhooks import wsgi

    settings.SECURE_SSL_REDIRECT = False

    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(wsgi, "webhook_answer", broken)
    seen = []
    handlers = {"exception": lambda **kw: seen.append("exception"), "finished": lambda **kw: seen.append("finished")}
    got_request_exception.connect(handlers["exception"])
    request_finished.connect(handlers["finished"])
    try:
        answer = wsgi_call("POST", "/webhooks/whatsapp/", b"{}", {"HTTP_X_HUB_SIGNATURE_256": "sha256=00"})
    finally:
        got_request_exception.disconnect(handlers["exception"])
        request_finished.disconnect(handlers["finished"])
    assert answer["status"] == 500 and answer["body"] == b"internal error"
    assert seen == ["exception", "finished"]
    assert "Internal Server Error: /webhooks/whatsapp/" in caplog.text and "boom" in caplog.text


def test_a_body_over_the_upload_limit_or_without_a_length_takes_the_full_chain(channel, settings, meta_example):
    settings.SECURE_SSL_REDIRECT = False
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = json.dumps(meta_example("Text Message")).encode()
    signed = {"HTTP_X_HUB_SIGNATURE_256": sign(body, APP_SECRET)}
    assert wsgi_call("POST", "/webhooks/whatsapp/", body, signed)["status"] == 400  # RequestDataTooBig
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    answer = wsgi_call("POST", "/webhooks/whatsapp/", body, {**signed, "CONTENT_LENGTH": ""})
    assert answer["status"] == 403  # the full chain reads no body without a length: nothing to verify
    assert "X-Frame-Options" in answer["headers"]
    assert Message.objects.count() == 0
    assert wsgi_call("POST", "/webhooks/whatsapp/", body, signed)["status"] == 200
    assert Message.objects.count() == 1


def test_behind_a_tls_proxy_the_forwarded_scheme_counts(channel, settings, meta_example):
    from webhooks.wsgi import WhatsbotWSGIHandler

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    body = json.dumps(meta_example("Text Message")).encode()
    headers = {"HTTP_X_HUB_SIGNATURE_256": sign(body, APP_SECRET), "HTTP_X_FORWARDED_PROTO": "https"}
    answer = wsgi_call("POST", "/webhooks/whatsapp/", body, headers, application=WhatsbotWSGIHandler())
    assert answer["status"] == 200 and "X-Frame-Options" not in answer["headers"]  # the short route
    assert Message.objects.count() == 1


def test_the_short_route_answers_as_the_view_does(channel, settings, client, meta_example):
    from webhooks.wsgi import WhatsbotWSGIHandler

    settings.SECURE_SSL_REDIRECT = False
    unknown = meta_example("Text Message")
    unknown["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "555"
    cases = [json.dumps(meta_example("Text Message")).encode(), json.dumps(unknown).encode(), b'{"entry": "nope"}', b"{nope"]
    for body in cases:
        signed = sign(body, APP_SECRET)
        short = wsgi_call("POST", "/webhooks/whatsapp/", body, {"HTTP_X_HUB_SIGNATURE_256": signed}, application=WhatsbotWSGIHandler())
        Message.objects.all().delete()  # the view sees the same delivery as new
        full = client.post("/webhooks/whatsapp/", data=body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signed)
        assert (short["status"], short["body"]) == (full.status_code, full.content), body[:40]
        assert "X-Frame-Options" not in short["headers"] and short["headers"]["Cache-Control"] == full["Cache-Control"]
