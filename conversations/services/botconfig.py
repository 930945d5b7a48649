"""Bot configurations: which one answers a channel, saving with a version kept, restoring.

Every save writes a `BotConfigVersion` snapshot in the same transaction, so the history is
complete and each bot message can point at the exact version that produced it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils.translation import gettext_noop

from profiles.models import STANDARD_FIELDS

from ..agent.prompts import DEFAULT_INSTRUCTIONS
from ..models import BotConfig, BotConfigVersion, Channel

# The fields a snapshot holds (and a restore puts back).
VERSIONED_FIELDS = (
    "name",
    "model",
    "instructions",
    "vector_store_ids",
    "fields_to_collect",
    "extra_fields",
    "order_number_pattern",
    "temperature",
    "max_output_tokens",
    "fixed_messages",
    "is_active",
)


# In English (the system check's); admin shows it translated.
STORED_PROMPT_HINT = gettext_noop(
    "Open the prompt in the OpenAI dashboard (platform.openai.com, Prompts), copy its text into the Instructions "
    "of the bot configuration (admin, Bot configurations) and save. Write the values of its own variables into "
    "the text: the customer's known and missing fields and the conversation's summary are added to the "
    "instructions every turn."
)

# In the snapshot that migration 0009 (stored_prompt_retired) wrote for a configuration that answered with an OpenAI
# stored prompt (shut down on 2026-11-30): its id, version and variables, for the admin.
RETIRED_PROMPT_KEY = "retired_stored_prompt"


def bot_config_snapshot(*, config: BotConfig) -> dict:
    return {name: getattr(config, name) for name in VERSIONED_FIELDS}


def bot_config_retired_prompt(*, config: BotConfig) -> dict | None:
    """The stored prompt `config` answered with until OpenAI shut them down, while nobody has
    saved it since (its instructions may not hold that prompt yet); else None."""
    if config.pk is None:
        return None
    data = BotConfigVersion.objects.filter(config=config, version=config.version).values_list("data", flat=True).first()
    return (data or {}).get(RETIRED_PROMPT_KEY)


def bot_config_save(*, config: BotConfig, user=None) -> BotConfigVersion:
    """Save `config` as its next version and keep a snapshot of it."""
    with transaction.atomic():
        if config.pk:
            current = BotConfig.objects.select_for_update().values_list("version", flat=True).get(pk=config.pk)
            config.version = current + 1
        else:
            config.version = 1
        config.updated_by = user if getattr(user, "pk", None) else None
        config.save()
        version = BotConfigVersion.objects.create(
            config=config, version=config.version, data=bot_config_snapshot(config=config), created_by=config.updated_by
        )
    bot_config_cache_clear()  # this process sees the change at once; others within seconds
    return version


def bot_config_restore(*, config: BotConfig, version: int, user=None) -> BotConfigVersion:
    """Put an earlier version back; the restore is itself saved as a new version."""
    snapshot = BotConfigVersion.objects.get(config=config, version=version)
    for name, value in snapshot.data.items():
        if name in VERSIONED_FIELDS:
            setattr(config, name, value)
    return bot_config_save(config=config, user=user)


def bot_config_default_values() -> dict:
    return {
        "name": "Default",
        # Blank: `OPENAI_MODEL` as it is at each call, so changing it in `.env` counts.
        "model": "",
        "instructions": DEFAULT_INSTRUCTIONS,
        "fields_to_collect": list(STANDARD_FIELDS),
    }


@dataclass(frozen=True)
class ActiveConfig:
    config: BotConfig
    version: BotConfigVersion


# Read for every customer message; admin edits are rare. Kept per process this long.
ACTIVE_CONFIG_CACHE_SECONDS = 10.0
_active_cache: dict[int, tuple[float, ActiveConfig]] = {}


def bot_config_for_channel(*, channel: Channel) -> ActiveConfig:
    """The channel's own active configuration, else the default one (created from the
    settings on first need), with the version row that bot messages will point at.
    An admin's save reaches the worker within ACTIVE_CONFIG_CACHE_SECONDS."""
    cached = bot_config_cached(channel=channel)
    if cached:
        return cached
    active = _bot_config_load(channel=channel)
    _active_cache[channel.pk] = (time.monotonic(), active)
    return active


def bot_config_cached(*, channel: Channel) -> ActiveConfig | None:
    """`bot_config_for_channel` when this process read it less than the cache's time ago,
    else None (no database access either way)."""
    cached = _active_cache.get(channel.pk)
    if cached and time.monotonic() - cached[0] < ACTIVE_CONFIG_CACHE_SECONDS:
        return cached[1]
    return None


def bot_config_cache_clear() -> None:
    _active_cache.clear()


def _bot_config_load(*, channel: Channel) -> ActiveConfig:
    config = (
        BotConfig.objects.filter(Q(channel=channel) | Q(channel__isnull=True), is_active=True)
        # The channel's own first, then the default.
        .order_by(F("channel_id").asc(nulls_last=True))
        .first()
    ) or _default_config_create()
    version = BotConfigVersion.objects.filter(config=config, version=config.version).first()
    if version is None:  # a config written around the service (fixture, shell): version it now
        version = bot_config_save(config=config)
    return ActiveConfig(config=config, version=version)


def _default_config_create() -> BotConfig:
    existing = BotConfig.objects.filter(channel__isnull=True).first()
    if existing:
        return existing  # the default exists but is switched off: still better than nothing
    try:
        with transaction.atomic():
            return bot_config_save(config=BotConfig(**bot_config_default_values())).config
    except IntegrityError:  # another worker created it first (one default, by constraint)
        return BotConfig.objects.get(channel__isnull=True)


EXTRA_FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


def bot_config_fields(*, config: BotConfig) -> list[str]:
    """The fields the agent collects, in the order it asks for them: the chosen standard
    fields, then the admin-defined ones."""
    standard = [f for f in STANDARD_FIELDS if f in (config.fields_to_collect or [])]
    extra = [
        f["key"]
        for f in (config.extra_fields or [])
        if isinstance(f, dict) and EXTRA_FIELD_KEY.fullmatch(str(f.get("key", ""))) and f["key"] not in STANDARD_FIELDS
    ]
    return standard + extra
