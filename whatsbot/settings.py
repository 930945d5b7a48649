"""Settings for whatsbot, read from the environment (and `.env`) through django-environ.

Every variable read here is documented in `.env.example`. Values are stripped of stray
whitespace: a trailing space or newline pasted into a token is a classic cause of
"'ascii' codec can't encode" errors deep inside the HTTP stack.
"""

import json
import re
import sys
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from whatsbot import localdb

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
_env_file = BASE_DIR / ".env"
# The test suite sets its own environment: a developer's .env (DEBUG on, real tokens) stays out.
_under_test = env.bool("WHATSBOT_TESTING", default="pytest" in sys.modules)
if _env_file.exists() and not _under_test:
    environ.Env.read_env(str(_env_file), overwrite=False)


def env_str(name: str, default: str = "") -> str:
    return env.str(name, default=default).strip()


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env.bool("DEBUG", default=False)
# Under pytest: insecure defaults are allowed and password hashing is fast.
TESTING = _under_test

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG or TESTING else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_htmx",
    "template_partials",
    "heroicons",
    "axes",
    "profiles",
    "conversations",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns locked-out logins into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "whatsbot.urls"
WSGI_APPLICATION = "whatsbot.wsgi.application"
ASGI_APPLICATION = "whatsbot.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
# PostgreSQL, the one database. No DATABASE_URL: the private server under var/postgres that
# `make run` starts and stops (whatsbot/localdb.py), reached through its Unix socket.
VAR_DIR.mkdir(exist_ok=True)
DATABASE_URL = env_str("DATABASE_URL") or localdb.url()
if not env_str("DATABASE_URL") and not localdb.running():
    # psycopg's own error ("No such file or directory" on the socket) does not say what to do.
    sys.stderr.write(
        f"whatsbot: DATABASE_URL is empty and the private PostgreSQL in {localdb.DATA_DIR} is not running: what needs\n"
        "the database works while `make run` runs, or run it through scripts/with-db (e.g. scripts/with-db\n"
        ".venv/bin/python manage.py createsuperuser).\n"
    )
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://user:password@host:5432/dbname).")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["OPTIONS"] = {
    # Every connection, Django's and the worker loop's (`conversations.database`), is set up
    # here once: UTC (so Django need not SET it per connection), and the hot statements of
    # `conversations.sql` prepared only when they ask (`prepare=True`), with generic plans
    # (their plans do not depend on the values; planning them costs more than running them).
    "options": "-c TimeZone=UTC -c plan_cache_mode=force_generic_plan",
    "prepare_threshold": 1 << 30,
}
# A worker's threads (or a web process's) share a few connections instead of holding one
# each. Django wants CONN_MAX_AGE 0 with a pool.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=0)
if DATABASE_POOL_MAX_SIZE:
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 2, "max_size": DATABASE_POOL_MAX_SIZE, "timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery ---------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # No acknowledgement bookkeeping in Redis: kombu's emulation writes a copy of every
        # message to a hash and an index when a worker takes it and deletes both on the ack,
        # a fifth of the worker's CPU per customer text. What it bought (a task held by a
        # worker that died without a warm shutdown comes back after the visibility timeout)
        # the database already gives, sooner: the sweepers queue again what is stored but
        # not handled or not sent once its lease has run out. A warm shutdown still puts
        # back the tasks a worker holds.
        "ack_emulation": False,
    }
else:
    # Embedded default: a broker made of files, shared by web, worker and beat on one machine.
    _queue_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}}
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # Broadcast messages (worker remote control); kombu's default is ./control.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# Celery's threads pool, but a customer text's task (a hand-off to the event loop) runs in
# the consumer's thread: see whatsbot/workerpool.py. `celery worker` without --pool uses it.
CELERY_WORKER_POOL = "whatsbot.workerpool:TaskPool"
CELERY_TASK_IGNORE_RESULT = True
# The worker and beat log through LOGGING's handler above (its filters: secrets redacted, routine
# kept quiet) instead of replacing the root logger's handlers with Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The webhook must answer even when the broker is down: fail fast, the sweeper re-queues.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
# Broker connections kept for publishing, shared by every thread of a process (Celery's
# default is 10; a threads-pool worker publishes from hundreds of threads).
CELERY_BROKER_POOL_LIMIT = env.int("CELERY_BROKER_POOL_LIMIT", default=10)
CELERY_TASK_PUBLISH_RETRY = False

# --- Auth, i18n, static -----------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/console/login/"

# Failed logins: lock a username+address pair after AXES_FAILURE_LIMIT tries for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.int("AXES_COOLOFF_MINUTES", default=15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)

LANGUAGE_CODE = "it"
LANGUAGES = [("it", "Italiano"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Rome")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = DEBUG or TESTING
STATICFILES_DIRS = [BASE_DIR / "static"]
# Customers' media (images, voice notes, documents): a folder under var/ by default, never
# served by URL (no MEDIA_URL route: the console serves them to logged-in staff only), or any
# Django storage backend by dotted path, with its options as JSON (an S3 bucket, say).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_STORAGE_BACKEND = env_str("MEDIA_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage")
MEDIA_STORAGE_OPTIONS = env.json("MEDIA_STORAGE_OPTIONS", default={})
if not isinstance(MEDIA_STORAGE_OPTIONS, dict):
    raise ImproperlyConfigured("MEDIA_STORAGE_OPTIONS must be a JSON object, e.g. {\"bucket_name\": \"whatsbot-media\"}.")
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": MEDIA_STORAGE_OPTIONS},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not (DEBUG or TESTING)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (all on when DEBUG is off, so `check --deploy` passes) ---------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not TESTING)
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- WhatsApp (Meta Cloud API) -----------------------------------------------------------
WHATSAPP_ACCESS_TOKEN = env_str("WHATSAPP_ACCESS_TOKEN")
WHATSAPP_PHONE_ID = env_str("WHATSAPP_PHONE_ID")
WHATSAPP_DISPLAY_NUMBER = env_str("WHATSAPP_DISPLAY_NUMBER")
WHATSAPP_ACCOUNT_ID = env_str("WHATSAPP_ACCOUNT_ID")
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET")
WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN")
# The Graph API version of every channel that does not pin its own (admin): a current one (v26.0
# came out on 29 July 2026; Meta keeps a version about two years). Named here and nowhere else.
WHATSAPP_API_VERSION = env_str("WHATSAPP_API_VERSION") or "v26.0"
if not re.fullmatch(r"v\d+\.\d+", WHATSAPP_API_VERSION):
    raise ImproperlyConfigured(f"WHATSAPP_API_VERSION must look like v26.0, not {WHATSAPP_API_VERSION!r}.")
WHATSAPP_API_BASE_URL = env_str("WHATSAPP_API_BASE_URL", "https://graph.facebook.com").rstrip("/")
WHATSAPP_HTTP_CONNECT_TIMEOUT = env.float("WHATSAPP_HTTP_CONNECT_TIMEOUT", default=5.0)
WHATSAPP_HTTP_READ_TIMEOUT = env.float("WHATSAPP_HTTP_READ_TIMEOUT", default=20.0)
WHATSAPP_SEND_MAX_ATTEMPTS = env.int("WHATSAPP_SEND_MAX_ATTEMPTS", default=5)
WHATSAPP_RETRY_BASE_SECONDS = env.float("WHATSAPP_RETRY_BASE_SECONDS", default=1.0)
WHATSAPP_RETRY_MAX_SECONDS = env.float("WHATSAPP_RETRY_MAX_SECONDS", default=60.0)
# Seconds between two syncs of every channel's message templates (beat); a template webhook
# keeps them current in between. At most one sync per TEMPLATES_SYNC_ON_UPDATE_SECONDS is
# asked for by webhooks that name a template not synced yet.
TEMPLATES_SYNC_INTERVAL_SECONDS = env.int("TEMPLATES_SYNC_INTERVAL_SECONDS", default=6 * 3600)
TEMPLATES_SYNC_ON_UPDATE_SECONDS = env.int("TEMPLATES_SYNC_ON_UPDATE_SECONDS", default=60)
if TEMPLATES_SYNC_INTERVAL_SECONDS < 60 or TEMPLATES_SYNC_ON_UPDATE_SECONDS < 1:
    raise ImproperlyConfigured("TEMPLATES_SYNC_INTERVAL_SECONDS must be at least 60, TEMPLATES_SYNC_ON_UPDATE_SECONDS at least 1.")
if not (DEBUG or TESTING) and WHATSAPP_PHONE_ID and not WHATSAPP_APP_SECRET:
    raise ImproperlyConfigured(
        "WHATSAPP_PHONE_ID is set but WHATSAPP_APP_SECRET is not: webhooks could not be verified."
    )

# Read only to say what became of it: the answer to media the bot cannot understand is now per
# bot configuration and per language (admin; conversations/checks.py warns while it is set).
ACK_MEDIA_REPLY = env_str("ACK_MEDIA_REPLY")
# Media a message carried: tries of fetching it before it is marked failed (temporary
# failures wait WHATSAPP_RETRY_BASE_SECONDS, doubling); stored files older than
# MEDIA_RETENTION_DAYS days are deleted by beat (0 keeps them for ever).
MEDIA_FETCH_MAX_ATTEMPTS = env.int("MEDIA_FETCH_MAX_ATTEMPTS", default=5)
MEDIA_RETENTION_DAYS = env.int("MEDIA_RETENTION_DAYS", default=90)
if MEDIA_FETCH_MAX_ATTEMPTS < 1 or MEDIA_RETENTION_DAYS < 0:
    raise ImproperlyConfigured("MEDIA_FETCH_MAX_ATTEMPTS must be >= 1 and MEDIA_RETENTION_DAYS >= 0.")
# What staff may attach in the console, in bytes: WhatsApp takes images up to 5 MB and documents
# up to 100 MB; these may only lower the limits (a smaller upload is faster to send, cheaper to keep).
MEDIA_OUT_IMAGE_MAX_BYTES = env.int("MEDIA_OUT_IMAGE_MAX_BYTES", default=5 * 1024 * 1024)
MEDIA_OUT_DOCUMENT_MAX_BYTES = env.int("MEDIA_OUT_DOCUMENT_MAX_BYTES", default=100 * 1024 * 1024)
if not 0 < MEDIA_OUT_IMAGE_MAX_BYTES <= 5 * 1024 * 1024:
    raise ImproperlyConfigured("MEDIA_OUT_IMAGE_MAX_BYTES must be between 1 and 5242880 (WhatsApp's limit for an image).")
if not 0 < MEDIA_OUT_DOCUMENT_MAX_BYTES <= 100 * 1024 * 1024:
    raise ImproperlyConfigured("MEDIA_OUT_DOCUMENT_MAX_BYTES must be between 1 and 104857600 (WhatsApp's limit for a document).")
# The emoji staff can react to a customer's message with, from the console, comma-separated.
REACTION_EMOJIS = env_list("REACTION_EMOJIS", "👍,❤️,😂,😮,😢,🙏")
if not REACTION_EMOJIS or any(len(emoji) > 8 for emoji in REACTION_EMOJIS):
    raise ImproperlyConfigured("REACTION_EMOJIS must list one or more emoji, comma-separated.")
# Stored inbound messages not handled after this many seconds are queued again by beat.
INBOUND_SWEEP_AFTER_SECONDS = env.int("INBOUND_SWEEP_AFTER_SECONDS", default=60)
# Seconds a claimed message is a worker's before another may take it over; the worker keeps
# the leases of its work in flight fresh, so this bounds how long a killed worker's customers
# wait for the sweeper (about LEASE_SECONDS plus the beat's 30 s).
LEASE_SECONDS = env.int("LEASE_SECONDS", default=60)
if LEASE_SECONDS < 3:
    raise ImproperlyConfigured("LEASE_SECONDS must be at least 3.")

# --- OpenAI -----------------------------------------------------------------------------
# OPEN_AI_KEY is the older spelling some businesses still have in their .env.
OPENAI_API_KEY = env_str("OPENAI_API_KEY") or env_str("OPEN_AI_KEY")
# The model of every bot configuration whose model is blank; empty: the current default, named
# here and nowhere else (a .env written from an older .env.example may pin a retired one).
OPENAI_MODEL = env_str("OPENAI_MODEL") or "gpt-6-luna"
# Read only to say what became of it: OpenAI shut stored prompts down on 2026-11-30, the
# prompt now lives in the bot configuration's instructions (conversations/checks.py warns).
OPENAI_PROMPT_ID = env_str("OPENAI_PROMPT_ID")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
# Model for structured extraction of customer details; empty: the bot configuration's model.
OPENAI_EXTRACTION_MODEL = env_str("OPENAI_EXTRACTION_MODEL")
# The model that writes a voice note's words (`/audio/transcriptions`). whisper-1 and the
# gpt-4o-*-transcribe models shut down on 2027-02-26; gpt-transcribe is OpenAI's replacement.
OPENAI_TRANSCRIBE_MODEL = env_str("OPENAI_TRANSCRIBE_MODEL") or "gpt-transcribe"
# How closely the model looks at a customer's image: auto, low, high or original (OpenAI's `detail`).
OPENAI_IMAGE_DETAIL = env_str("OPENAI_IMAGE_DETAIL", "auto")
if OPENAI_IMAGE_DETAIL not in ("auto", "low", "high", "original"):
    raise ImproperlyConfigured("OPENAI_IMAGE_DETAIL must be auto, low, high or original.")
# The largest image (bytes) given to the model, inline as base64; WhatsApp's own limit is 5 MB.
# A larger one reaches the model as its caption only.
OPENAI_IMAGE_MAX_BYTES = env.int("OPENAI_IMAGE_MAX_BYTES", default=5 * 1024 * 1024)
# One call waits at most this long (read); connecting at most OPENAI_CONNECT_TIMEOUT_SECONDS.
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=30.0)
OPENAI_CONNECT_TIMEOUT_SECONDS = env.float("OPENAI_CONNECT_TIMEOUT_SECONDS", default=5.0)
# USD per million tokens for the cost estimate of each message, by model (a dated snapshot,
# "gpt-6-luna-2026-09-22", costs what its model costs). OPENAI_PRICES, a JSON object of the
# same shape, adds models or replaces these prices; a model in neither has an unknown cost
# (NULL), never zero. OpenAI's list prices as of 2026-11-30.
PRICE_KINDS = ("input", "cached_input", "output")
OPENAI_PRICES_DEFAULT = {
    "gpt-6-luna": {"input": "0.10", "cached_input": "0.01", "output": "0.50"},
    "gpt-6-sol": {"input": "2.00", "cached_input": "0.20", "output": "10.00"},
    # Shut down on 2027-01-14; priced until then.
    "gpt-4.1": {"input": "2.00", "cached_input": "0.50", "output": "8.00"},
    "gpt-4.1-mini": {"input": "0.40", "cached_input": "0.10", "output": "1.60"},
    "gpt-4o": {"input": "2.50", "cached_input": "1.25", "output": "10.00"},
    "gpt-4o-mini": {"input": "0.15", "cached_input": "0.075", "output": "0.60"},
}


def openai_prices(text: str) -> dict[str, dict[str, Decimal]]:
    """OPENAI_PRICES over the defaults, as Decimals; a value that is not such a mapping of
    non-negative numbers stops the start with the reason."""
    try:
        given = json.loads(text) if text else {}
        if not isinstance(given, dict):
            raise ValueError("not a JSON object")
        prices = {}
        for model, price in {**OPENAI_PRICES_DEFAULT, **given}.items():
            if not isinstance(price, dict) or set(price) != set(PRICE_KINDS):
                raise ValueError(f"{model!r}: an object with exactly {', '.join(PRICE_KINDS)}")
            prices[model] = {kind: Decimal(str(price[kind])) for kind in PRICE_KINDS}
            if any(not value.is_finite() or value < 0 for value in prices[model].values()):
                raise ValueError(f"{model!r}: prices are numbers of 0 or more")
    except (ValueError, ArithmeticError) as exc:
        raise ImproperlyConfigured(f"OPENAI_PRICES: {exc}") from None
    return prices


OPENAI_PRICES = openai_prices(env_str("OPENAI_PRICES"))
# Tries per call (the SDK's own retries: timeouts, 408, 409, 429, 5xx, with its backoff).
OPENAI_MAX_ATTEMPTS = env.int("OPENAI_MAX_ATTEMPTS", default=3)
# Quiet period after the customer's last message before the agent answers the burst.
REPLY_DEBOUNCE_SECONDS = env.float("REPLY_DEBOUNCE_SECONDS", default=3.0)
# Idle hours after which the next message starts a new OpenAI conversation seeded with a summary.
CONVERSATION_ROTATE_HOURS = env.float("CONVERSATION_ROTATE_HOURS", default=48.0)
# Messages listed by the /history command.
AGENT_HISTORY_MESSAGES = env.int("AGENT_HISTORY_MESSAGES", default=10)
# The worker's event loop (conversations/runtime.py): turns in flight per worker process at
# most, kept threads for what has no async form (the ORM, a Redis publish), the loop's own
# PostgreSQL connections, and how long a warm shutdown waits for the turns in flight.
WORKER_MAX_IN_FLIGHT = env.int("WORKER_MAX_IN_FLIGHT", default=2000)
WORKER_SYNC_THREADS = env.int("WORKER_SYNC_THREADS", default=16)
WORKER_DB_CONNECTIONS = env.int("WORKER_DB_CONNECTIONS", default=8)
WORKER_DRAIN_SECONDS = env.float("WORKER_DRAIN_SECONDS", default=25.0)
if min(WORKER_MAX_IN_FLIGHT, WORKER_SYNC_THREADS, WORKER_DB_CONNECTIONS) < 1 or WORKER_DRAIN_SECONDS < 0:
    raise ImproperlyConfigured(
        "WORKER_MAX_IN_FLIGHT, WORKER_SYNC_THREADS and WORKER_DB_CONNECTIONS must be >= 1, WORKER_DRAIN_SECONDS >= 0."
    )
# Tries of a customer message's turn (each claim counts one) before the sweeper stops
# re-queueing it and hands the conversation to a person instead.
TURN_MAX_ATTEMPTS = env.int("TURN_MAX_ATTEMPTS", default=5)
if OPENAI_MAX_ATTEMPTS < 1 or REPLY_DEBOUNCE_SECONDS < 0 or CONVERSATION_ROTATE_HOURS <= 0 or TURN_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        "OPENAI_MAX_ATTEMPTS and TURN_MAX_ATTEMPTS must be >= 1, REPLY_DEBOUNCE_SECONDS >= 0 and CONVERSATION_ROTATE_HOURS > 0."
    )

# --- Logging: never print secrets; tokens are redacted by a filter on every handler -------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # quiet: no INFO line per poll request or per periodic task run (whatsbot/logfilters.py).
    "filters": {"redact": {"()": "integrations.redaction.RedactSecretsFilter"}, "quiet": {"()": "whatsbot.logfilters.QuietRoutineFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["quiet", "redact"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"},
        # runserver's access log through the handler above (Django's default gives it a handler of its own, unfiltered).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # One INFO line per HTTP request to OpenAI/Meta is noise (and costs CPU at volume).
        # (The OpenAI SDK's HTTP client logs as httpx2/httpcore2; aiohttp as aiohttp.*.)
        **{name: {"level": "WARNING"} for name in ("httpx", "httpcore", "httpx2", "httpcore2", "urllib3", "aiohttp.access")},
    },
}
