from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_environment_channel(sender, **kwargs) -> None:
    # Imported when called: apps.py is read before the models can be.
    from .services.channels import channel_sync_from_environment

    channel_sync_from_environment()


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = _("Conversations")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks; needs the apps loaded)

        post_migrate.connect(_sync_environment_channel, sender=self)
