"""`manage.py bootstrap --ready`: the closing words of `make run` (addresses, the login, how to stop)."""

import io

import pytest
from django.core.management import call_command

from conversations.management.commands import bootstrap
from tests.conversations.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def password_file(tmp_path, monkeypatch, settings):
    settings.DEBUG = True
    path = tmp_path / "demo-admin-password"
    monkeypatch.setattr(bootstrap, "DEMO_PASSWORD_FILE", path)
    settings.BASE_DIR = tmp_path
    return path


def run(*args) -> str:
    out = io.StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


def test_it_ends_with_the_addresses_the_demo_login_and_how_to_stop(password_file, monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    setup = run()
    password = password_file.read_text().strip()
    assert "demo admin 'admin'" in setup and password not in setup  # set up quietly; told once, at the end

    ready = run("--ready")
    assert "Console:    http://127.0.0.1:8123/console/" in ready and "Admin:      http://127.0.0.1:8123/admin/" in ready
    assert f"user admin, password {password} (kept in demo-admin-password)" in ready
    assert ready.rstrip().endswith("Ctrl-C stops everything.")
    assert "Created" not in run() and password_file.read_text().strip() == password  # idempotent


def test_a_changed_demo_password_is_not_printed_and_the_admin_logs_in_with_their_own(password_file):
    run()
    admin = bootstrap.get_user_model().objects.get(username="admin")
    admin.set_password("scelta-da-me-2026")
    admin.save()
    ready = run("--ready")
    assert "your own superuser" in ready and password_file.read_text().strip() not in ready


def test_without_debug_there_is_no_demo_admin_and_it_says_how_to_make_a_superuser(settings, tmp_path, monkeypatch):
    settings.DEBUG = False
    monkeypatch.setattr(bootstrap, "DEMO_PASSWORD_FILE", tmp_path / "demo-admin-password")
    run()
    assert "manage.py createsuperuser" in run("--ready")
    UserFactory(username="boss", is_superuser=True)
    assert "your own superuser" in run("--ready")
