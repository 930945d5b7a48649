from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Imported once the apps are loaded: the check reads the short route, which imports the views.
        from . import checks  # noqa: F401
