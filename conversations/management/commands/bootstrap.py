"""Idempotent set-up run after `migrate` (by `make run`, and safe in a release step): the
environment's channel, the roles, the sandbox channel for the simulator and (with DEBUG on)
a demo admin. `bootstrap --ready` sets nothing up: `make run` calls it once its processes are
up, to end with the addresses, the login and how to stop."""

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

    def add_arguments(self, parser):
        parser.add_argument("--ready", action="store_true", help="Only print where the running product is and how to log in.")

    def handle(self, *args, ready: bool = False, **options):
        if ready:
            self._ready()
            return
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
        """The demo admin, made once with a generated password kept in DEMO_PASSWORD_FILE."""
        User = get_user_model()
        if User.objects.filter(username=DEMO_USERNAME).exists():
            return
        password = secrets.token_urlsafe(9)
        User.objects.create_superuser(DEMO_USERNAME, "admin@example.com", password)
        DEMO_PASSWORD_FILE.write_text(password + "\n")
        DEMO_PASSWORD_FILE.chmod(0o600)
        self.stdout.write(f"Created the demo admin '{DEMO_USERNAME}' (its password is in {DEMO_PASSWORD_FILE}).")

    def _demo_password(self) -> str | None:
        """The demo admin's generated password, while it is still the one that logs in."""
        user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
        if not settings.DEBUG or user is None or not DEMO_PASSWORD_FILE.exists():
            return None
        password = DEMO_PASSWORD_FILE.read_text().strip()
        return password if user.check_password(password) else None

    def _ready(self) -> None:
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        password = self._demo_password()
        if password:
            login = f"user {DEMO_USERNAME}, password {password} (kept in {DEMO_PASSWORD_FILE.relative_to(settings.BASE_DIR)})"
        elif get_user_model().objects.filter(is_superuser=True).exists():
            login = f"your own superuser (forgot its password? .venv/bin/python manage.py changepassword {DEMO_USERNAME})"
        else:
            login = "none yet: .venv/bin/python manage.py createsuperuser"
        self.stdout.write(
            self.style.SUCCESS("\nwhatsbot is running.")
            + f"\n  Console:    {base}/console/"
            f"\n  Admin:      {base}/admin/"
            f"\n  Simulator:  {base}/console/simulator/"
            f"\n  Log in as:  {login}"
            "\n  Ctrl-C stops everything.\n"
        )
