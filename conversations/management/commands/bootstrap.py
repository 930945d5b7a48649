"""Idempotent first-run set-up used by `make run`: the environment's channel, the sandbox
channel for the simulator, and (with DEBUG on) a demo admin whose login is printed."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from conversations.models import Channel, Provider
from conversations.services.channels import channel_sync_from_environment

SANDBOX_PHONE_ID = "sandbox"


class Command(BaseCommand):
    help = "Create the environment's channel, the sandbox channel and (DEBUG only) a demo admin."

    def handle(self, *args, **options):
        channel = channel_sync_from_environment()
        if channel:
            self.stdout.write(f"WhatsApp channel from the environment: {channel}")
        sandbox, created = Channel.objects.get_or_create(
            phone_number_id=SANDBOX_PHONE_ID,
            defaults={
                "name": "Simulator",
                "provider": Provider.SANDBOX,
                "display_phone_number": "+00 000 0000",
                "app_secret": secrets.token_urlsafe(32),
                "verify_token": "",
            },
        )
        if created:
            self.stdout.write("Created the sandbox channel for the simulator.")
        if settings.DEBUG:
            self._demo_admin()

    def _demo_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("Demo admin exists: log in at http://127.0.0.1:8000/console/ as 'admin' (password as printed on first run).")
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser("admin", "admin@example.com", password)
        self.stdout.write(self.style.SUCCESS(f"Demo admin created: http://127.0.0.1:8000/console/  user: admin  password: {password}"))
