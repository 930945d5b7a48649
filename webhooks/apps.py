from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = _("Webhooks")

    def ready(self) -> None:
        # Imported once the apps are loaded: the check reads the short route, which imports the views.
        from . import checks  # noqa: F401
