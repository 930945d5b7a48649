"""Idempotent set-up run after `migrate` (by `make run`, and safe in a release step): the
environment's channel, the roles, the sandbox channel for the simulator and (with DEBUG on)
a demo admin whose login is printed."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from conversations.roles import role_groups_ensure
from conversations.services.channels import (
    channel_sync_from_environment,
    sandbox_channel_ensure,
)

DEMO_USERNAME = "admin"
# DEBUG only, under the gitignored var/: lets every `make run` print the login again.
DEMO_PASSWORD_FILE = settings.VAR_DIR / "demo-admin-password"


class Command(BaseCommand):
    help = "Create the environment's channel, the roles, the sandbox channel and (DEBUG only) a demo admin."

    def handle(self, *args, **options):
        channel = channel_sync_from_environment()
        if channel:
            self.stdout.write(f"WhatsApp channel from the environment: {channel}")
        role_groups_ensure()
        _, created = sandbox_channel_ensure()
        if created:
            self.stdout.write("Created the sandbox channel for the simulator.")
        if settings.DEBUG:
            self._demo_admin()

    def _demo_admin(self) -> None:
        User = get_user_model()
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            password = secrets.token_urlsafe(9)
            User.objects.create_superuser(DEMO_USERNAME, "admin@example.com", password)
            DEMO_PASSWORD_FILE.write_text(password + "\n")
            DEMO_PASSWORD_FILE.chmod(0o600)
        elif DEMO_PASSWORD_FILE.exists() and user.check_password(DEMO_PASSWORD_FILE.read_text().strip()):
            password = DEMO_PASSWORD_FILE.read_text().strip()
        else:
            self.stdout.write(
                f"Demo admin exists: log in at {base}/console/ as '{DEMO_USERNAME}' "
                f"(forgot the password? `.venv/bin/python manage.py changepassword {DEMO_USERNAME}`)."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo login (DEBUG only): {base}/console/  user: {DEMO_USERNAME}  password: {password}\n"
                f"  Chat as a customer: {base}/console/simulator/   Django admin: {base}/admin/"
            )
        )
