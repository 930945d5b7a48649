"""WSGI entry point: Django's handler, with the webhook's short route (`webhooks.wsgi`)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot.settings")

django.setup(set_prefix=False)  # as get_wsgi_application() does, without building a handler to drop

from webhooks.wsgi import WhatsbotWSGIHandler  # noqa: E402  (needs the apps loaded by the line above)

application = WhatsbotWSGIHandler()

# Import the URLconf and the tasks (with them the agent and the OpenAI SDK, over a second of
# CPU) now: in gunicorn's master with --preload, not in each worker's first request.
import conversations.tasks  # noqa: E402,F401
import whatsbot.urls  # noqa: E402,F401
from whatsbot import gctune  # noqa: E402

gctune.process_ready()  # in gunicorn's master with --preload: before the fork
