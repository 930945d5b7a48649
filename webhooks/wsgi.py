"""The webhook's short route: Meta's deliveries (`POST /webhooks/whatsapp/`) answered by the
WSGI entry point itself, without Django's request/response objects, middleware chain or
view decorators.

A delivery verifies its own signature and needs none of sessions, authentication, messages,
CSRF, locale, HTMX or django-axes; at hundreds of deliveries per second per core Django's
per-request machinery cost about a fifth of the webhook's CPU. Everything else, the
webhook's GET handshake included, goes through Django as usual.

The short route keeps what matters from the full one:
- the `request_started`/`request_finished` signals (database connections are closed or
  kept as `CONN_MAX_AGE` says), `request_finished` when the server closes the response;
- the ALLOWED_HOSTS check, the HTTPS redirect, the upload size limit and requests without
  a Content-Length: any request that would not pass them takes the full chain, which
  answers it (400 or 301) exactly as before;
- the same answers as the view (`webhooks.views.webhook_answer`), a Content-Length, and
  no caching;
- an exception becomes a logged 500 (`django.request`, with `got_request_exception`).

Middleware it skips must be listed in SKIPPED_MIDDLEWARE with the reason it may be skipped:
a system check (`webhooks.checks`) fails when MIDDLEWARE holds anything else.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.http.request import HttpHeaders, split_domain_port, validate_host
from django.urls import reverse

from .views import webhook_answer

request_logger = logging.getLogger("django.request")

# What the short route may leave out, and why: a middleware added to MIDDLEWARE that is not
# here fails the system check until someone decides whether deliveries need it.
SKIPPED_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": "its HTTPS redirect is done here; its headers concern browsers",
    "whitenoise.middleware.WhiteNoiseMiddleware": "serves static files only",
    "django.contrib.sessions.middleware.SessionMiddleware": "a delivery has no session",
    "django.middleware.locale.LocaleMiddleware": "a delivery has no language",
    "django.middleware.common.CommonMiddleware": "the path is exact; DISALLOWED_USER_AGENTS and PREPEND_WWW are checked apart",
    "django.middleware.csrf.CsrfViewMiddleware": "the view is csrf_exempt: a delivery is verified by its signature",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "a delivery has no user",
    "django.contrib.messages.middleware.MessageMiddleware": "a delivery shows no messages",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "the answer is never framed",
    "django_htmx.middleware.HtmxMiddleware": "a delivery is not an htmx request",
    "axes.middleware.AxesMiddleware": "a delivery is not a login",
}


_DEBUG_HOSTS = [".localhost", "127.0.0.1", "[::1]"]  # Django's defaults when DEBUG and no ALLOWED_HOSTS


class WhatsbotWSGIHandler(WSGIHandler):
    _webhook_path: str | None = None

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == self._path() and _short_route_fits(environ):
            return self._webhook(environ, start_response)
        return super().__call__(environ, start_response)

    def _path(self) -> str:
        if WhatsbotWSGIHandler._webhook_path is None:
            WhatsbotWSGIHandler._webhook_path = reverse("webhooks:whatsapp")
        return WhatsbotWSGIHandler._webhook_path

    def _webhook(self, environ, start_response):
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
            status, text = webhook_answer(body=body, headers=HttpHeaders(environ))
        except Exception:
            signals.got_request_exception.send(sender=self.__class__, request=None)
            request_logger.error("Internal Server Error: %s", environ["PATH_INFO"], exc_info=True, extra={"status_code": 500})
            status, text = 500, "internal error"
        else:
            if status >= 400:
                level = request_logger.error if status >= 500 else request_logger.warning
                level("%s: %s", HTTPStatus(status).phrase, environ["PATH_INFO"], extra={"status_code": status})
        content = text.encode()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(content))),
                ("Cache-Control", "max-age=0, no-cache, no-store, must-revalidate, private"),
            ],
        )
        return _Answer(content, self.__class__)


class _Answer:
    """The response body; closing it (the server does, once sent) ends the request."""

    def __init__(self, content: bytes, sender) -> None:
        self.content, self.sender = content, sender

    def __iter__(self):
        yield self.content

    def close(self) -> None:
        signals.request_finished.send(sender=self.sender)


def _short_route_fits(environ) -> bool:
    """Whether Django's full chain would let the request through to the view unchanged."""
    if settings.SECURE_SSL_REDIRECT and not _secure(environ):
        return False  # SecurityMiddleware redirects it
    length = environ.get("CONTENT_LENGTH")
    if not length or not length.isdigit():
        return False
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and int(length) > limit:
        return False  # Django answers 400 (RequestDataTooBig)
    host = environ.get("HTTP_HOST")
    if not host or settings.USE_X_FORWARDED_HOST:
        return False
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (_DEBUG_HOSTS if settings.DEBUG else [])
    return bool(domain) and validate_host(domain, allowed)  # else DisallowedHost: 400


def _secure(environ) -> bool:
    # As HttpRequest.is_secure(): the proxy's header when one is configured, else the scheme.
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


