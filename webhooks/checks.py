"""A system check: the webhook's short route (`webhooks.wsgi`) must not silently skip
middleware or settings it does not know."""

from django.conf import settings
from django.core import checks

from .wsgi import SKIPPED_MIDDLEWARE


@checks.register(checks.Tags.compatibility)
def check_short_route(app_configs, **kwargs):
    errors = [
        checks.Error(
            f"{path!r} is in MIDDLEWARE, but the webhook's short route (webhooks.wsgi) would skip it for every delivery.",
            hint="If deliveries may skip it, add it with the reason to webhooks.wsgi.SKIPPED_MIDDLEWARE; "
            "otherwise make the short route do what it does.",
            id="webhooks.E001",
        )
        for path in settings.MIDDLEWARE
        if path not in SKIPPED_MIDDLEWARE
    ]
    if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
        errors.append(
            checks.Error(
                "DISALLOWED_USER_AGENTS or PREPEND_WWW is set: CommonMiddleware applies them, the webhook's short route does not.",
                hint="Teach webhooks.wsgi the setting before setting it.",
                id="webhooks.E002",
            )
        )
    return errors
