"""Start-up configuration and the health endpoint."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conversations.models import Channel
from conversations.services.channels import channel_sync_from_environment

ROOT = Path(__file__).resolve().parents[2]


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process with exactly this environment (no .env file is read
    for variables given here; WHATSBOT_TESTING is off, as in production)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "OPENAI_", "OPEN_AI", "DEBUG", "SECRET_KEY"))}
    base.update({"WHATSBOT_TESTING": "false", "DJANGO_SETTINGS_MODULE": "whatsbot.settings", **env})
    program = f"import django; django.setup(); from django.conf import settings as s\n{code}"
    return subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def test_values_are_stripped_of_stray_whitespace():
    result = run_django(
        "print(repr(s.WHATSAPP_ACCESS_TOKEN), repr(s.WHATSAPP_PHONE_ID))",
        DEBUG="true", WHATSAPP_ACCESS_TOKEN="  EAAabc123 \n", WHATSAPP_PHONE_ID=" 123 ", WHATSAPP_APP_SECRET="x",
    )  # fmt: skip
    assert result.stdout.strip() == "'EAAabc123' '123'", result.stderr


def test_the_older_openai_key_spelling_is_accepted():
    result = run_django("print(s.OPENAI_API_KEY)", DEBUG="true", OPEN_AI_KEY=" sk-old ")
    assert result.stdout.strip() == "sk-old"
    result = run_django("print(s.OPENAI_API_KEY)", DEBUG="true", OPEN_AI_KEY="sk-old", OPENAI_API_KEY="sk-new")
    assert result.stdout.strip() == "sk-new"


def test_an_empty_openai_model_is_the_default_one_and_that_one_is_priced():
    result = run_django("print(s.OPENAI_MODEL, s.OPENAI_PRICES[s.OPENAI_MODEL]['output'])", DEBUG="true", OPENAI_MODEL="")
    assert result.stdout.split() == ["gpt-6-luna", "0.50"]
    result = run_django("print(s.OPENAI_MODEL)", DEBUG="true", OPENAI_MODEL=" gpt-6-sol ")
    assert result.stdout.strip() == "gpt-6-sol"


def test_openai_prices_add_to_the_defaults_and_a_bad_value_stops_the_start():
    prices = '{"gpt-7-nova": {"input": 1, "cached_input": 0.1, "output": 4}, "gpt-6-luna": {"input": 0.2, "cached_input": 0.02, "output": 1}}'
    result = run_django("print(s.OPENAI_PRICES['gpt-7-nova']['cached_input'], s.OPENAI_PRICES['gpt-6-luna']['input'], "
                        "s.OPENAI_PRICES['gpt-6-sol']['input'])", DEBUG="true", OPENAI_PRICES=prices)  # fmt: skip
    assert result.stdout.split() == ["0.1", "0.2", "2.00"]
    for bad in ("[1, 2]", '{"gpt-7-nova": {"input": 1, "output": 4}}', '{"gpt-7-nova": {"input": -1, "cached_input": 0, "output": 4}}',
                '{"gpt-7-nova": {"input": "free", "cached_input": 0, "output": 4}}', "{not json"):  # fmt: skip
        result = run_django("print('started')", DEBUG="true", OPENAI_PRICES=bad)
        assert result.returncode != 0 and "OPENAI_PRICES" in result.stderr, bad


def test_env_example_documents_exactly_the_variables_the_settings_read():
    """Every variable settings.py reads is in .env.example (a commented line counts), and every
    value .env.example sets is read: a stale line there promises a knob that does nothing."""
    tree = ast.parse((ROOT / "whatsbot" / "settings.py").read_text())
    readers = {"env_str", "env_list", "env.bool", "env.int", "env.float", "env.str", "env.json"}
    read = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) in readers
        and node.args and isinstance(node.args[0], ast.Constant)
    }  # fmt: skip
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    set_there = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))

    assert "OPENAI_MAX_ATTEMPTS" in read and "DATABASE_URL" in read  # the parser finds them
    assert read - documented == set()
    assert set_there - read == set()


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_django("print('started')", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_it_refuses_to_start_with_a_whatsapp_number_but_no_app_secret():
    result = run_django("print('started')", DEBUG="false", SECRET_KEY="k" * 60, WHATSAPP_PHONE_ID="123", WHATSAPP_APP_SECRET="")
    assert result.returncode != 0 and "WHATSAPP_APP_SECRET" in result.stderr


def test_without_urls_it_uses_the_private_postgresql_and_a_serverless_broker():
    result = run_django(
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL)",
        DEBUG="true", DATABASE_URL="", REDIS_URL="",
    )  # fmt: skip
    assert result.stdout.split() == ["django.db.backends.postgresql", str(ROOT / "var" / "postgres"), "filesystem://"], result.stderr


def test_a_database_other_than_postgresql_is_refused():
    result = run_django("print('started')", DEBUG="true", DATABASE_URL="sqlite:///var/db.sqlite3")
    assert result.returncode != 0 and "DATABASE_URL must point at PostgreSQL" in result.stderr


@pytest.mark.parametrize(
    "variable", ["WORKER_MAX_IN_FLIGHT", "WORKER_SYNC_THREADS", "WORKER_DB_CONNECTIONS", "TURN_MAX_ATTEMPTS", "OPENAI_MAX_ATTEMPTS"]
)
def test_a_worker_limit_below_one_refuses_to_start(variable):
    result = run_django("print('started')", DEBUG="true", **{variable: "0"})
    assert result.returncode != 0 and variable in result.stderr


def test_a_negative_drain_time_refuses_to_start():
    result = run_django("print('started')", DEBUG="true", WORKER_DRAIN_SECONDS="-1")
    assert result.returncode != 0 and "WORKER_DRAIN_SECONDS" in result.stderr


def test_with_urls_it_uses_postgresql_and_redis():
    result = run_django(
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CACHES['default']['BACKEND'])",
        DEBUG="true", DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0",
    )  # fmt: skip
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "redis://127.0.0.1:6379/0",
        "django.core.cache.backends.redis.RedisCache",
    ], result.stderr


def test_the_deploy_checks_pass_with_debug_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "DEBUG"))}
    env.update(WHATSBOT_TESTING="false", DEBUG="false", SECRET_KEY="a-long-random-production-key-" + "x7Yq" * 10, ALLOWED_HOSTS="desk.example.com")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_an_active_channel_without_an_app_secret_fails_the_deploy_check(settings):
    from conversations.checks import check_channel_secrets

    settings.DEBUG = False
    Channel.objects.create(name="No secret", phone_number_id="1", app_secret="")
    Channel.objects.create(name="Sandbox", phone_number_id="sandbox", provider="sandbox", app_secret="")
    errors = check_channel_secrets(None)
    assert [e.id for e in errors] == ["whatsbot.E001"] and "No secret" in errors[0].msg


@pytest.mark.django_db
def test_the_environment_channel_is_created_and_updated_idempotently(settings):
    settings.WHATSAPP_PHONE_ID = "555"
    settings.WHATSAPP_ACCESS_TOKEN = "EAAfirst"
    settings.WHATSAPP_APP_SECRET = "secret1"
    settings.WHATSAPP_VERIFY_TOKEN = "verify"
    first = channel_sync_from_environment()
    again = channel_sync_from_environment()
    settings.WHATSAPP_ACCESS_TOKEN = "EAAsecond"
    updated = channel_sync_from_environment()

    assert first.pk == again.pk == updated.pk and Channel.objects.count() == 1
    channel = Channel.objects.get()
    assert channel.access_token == "EAAsecond" and channel.app_secret == "secret1" and channel.from_environment


@pytest.mark.django_db
def test_health_reports_database_and_broker(client, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs the Redis broker")
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_health_is_503_when_the_broker_is_down(client, broker_down):
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["broker"] == "down" and response.json()["database"] == "ok"


def test_the_default_graph_api_version_is_a_current_one_and_a_bad_one_is_refused():
    result = run_django("print(s.WHATSAPP_API_VERSION)", DEBUG="true")
    major, minor = result.stdout.strip().removeprefix("v").split(".")
    assert int(major) >= 25 and minor == "0", result.stderr
    assert run_django("print(s.WHATSAPP_API_VERSION)", DEBUG="true", WHATSAPP_API_VERSION="").stdout == result.stdout
    result = run_django("print('started')", DEBUG="true", WHATSAPP_API_VERSION="23.0")
    assert result.returncode != 0 and "WHATSAPP_API_VERSION must look like" in result.stderr


# A Graph API version written out, as in a URL's path (a file name's `_vNN.0` is not one).
GRAPH_VERSION = re.compile(r"(?<![\w.])v\d{2}\.\d\b")


def test_the_graph_api_version_is_named_in_one_setting_only():
    """Code, templates, docs, the bench and the tests take the version from
    WHATSAPP_API_VERSION; a second copy would be left behind by the next upgrade."""
    suffixes = {".py", ".html", ".md", ".txt", ".js", ".example", ".cfg", ".ini", ".toml", ".sh", ""}
    skip = {".git", ".venv", "var", "locale", "static", "node_modules", "fixtures"}
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if not path.is_file() or skip & set(relative.parts) or path.suffix not in suffixes:
            continue
        if relative.as_posix() == "whatsbot/settings.py" or path.stat().st_size > 1_000_000:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if GRAPH_VERSION.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []
