"""WSGI entry point.

Meta's webhook deliveries (`POST /webhooks/whatsapp/`) skip the middleware chain: the view
verifies the signature itself and needs none of sessions, authentication, messages, CSRF,
locale, HTMX or django-axes, which together cost more CPU than the rest of Django's request
handling. Everything else, including the webhook's GET handshake, takes the full chain.
The short route keeps what matters from it: the request_started/request_finished signals
(database connections are closed or kept as `CONN_MAX_AGE` says), the ALLOWED_HOSTS check,
the HTTPS redirect when the request is not secure (the full chain answers those), exception
to 500 conversion, the logging of error responses and the Content-Length header.
"""

import os

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.urls import resolve, reverse, set_urlconf
from django.utils.log import log_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot.settings")


class WhatsbotWSGIHandler(WSGIHandler):
    _webhook: tuple[str, object] | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ssl_redirect = settings.SECURE_SSL_REDIRECT  # read once, as SecurityMiddleware does

    def _webhook_route(self) -> tuple[str, object]:
        if self._webhook is None:
            path = reverse("webhooks:whatsapp")
            WhatsbotWSGIHandler._webhook = (path, convert_exception_to_response(_checked_host(resolve(path).func)))
        return self._webhook

    def get_response(self, request):
        path, view = self._webhook_route()
        if request.method != "POST" or request.path_info != path:
            return super().get_response(request)
        if self.ssl_redirect and not request.is_secure():
            return super().get_response(request)  # SecurityMiddleware redirects it
        set_urlconf(settings.ROOT_URLCONF)
        response = view(request)
        if not response.streaming and not response.has_header("Content-Length"):
            # As CommonMiddleware does: lets a keep-alive client read the answer without
            # waiting for the connection to close.
            response.headers["Content-Length"] = str(len(response.content))
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response


def _checked_host(view):
    def inner(request):
        request.get_host()  # DisallowedHost -> 400, as CommonMiddleware would
        return view(request)

    return inner


get_wsgi_application()  # django.setup()
application = WhatsbotWSGIHandler()

# Import the URLconf and the tasks (with them the agent and the OpenAI SDK, over a second of
# CPU) now: in gunicorn's master with --preload, not in each worker's first request.
import conversations.tasks  # noqa: E402,F401
import whatsbot.urls  # noqa: E402,F401
