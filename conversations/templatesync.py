"""A business account's message templates read from its provider and stored: for the
periodic task, the sync asked for by a template webhook, and admin's "Sync templates now".

The listing is fetched on an event loop of its own (`runtime.run`), outside any transaction;
then stored in one (`services.templates.templates_store`). Each account is synced once,
however many of its numbers are channels, with the credentials of one of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from integrations.base import ProviderError

from . import runtime
from .models import Channel
from .providers import provider_for
from .services.templates import SyncResult, templates_store

logger = logging.getLogger(__name__)


@dataclass
class AccountSync:
    business_account_id: str
    channel: Channel
    result: SyncResult | None = None
    error: ProviderError | None = None


def templates_sync(*, channel: Channel) -> SyncResult:
    """Read the templates of the channel's business account and store them; `ProviderError`
    when the provider cannot list them (its message never carries the access token)."""
    account = channel.business_account_id.strip()
    if not account:
        raise ProviderError("The channel has no business account id", permanent=True)
    provider = provider_for(channel)
    if not hasattr(provider, "templates_list"):
        raise ProviderError(f"The {channel.get_provider_display()} provider keeps no templates", permanent=True)
    # Meta stamps its events to the second: a listing asked for within the same second as an
    # event is not taken for newer than it (ties go to the event).
    fetched_at = timezone.now().replace(microsecond=0)
    listing = runtime.run(provider.templates_list, account)
    result = templates_store(business_account_id=account, listing=listing, fetched_at=fetched_at)
    for skipped in result.skipped:
        logger.warning("templates of account %s: skipped %s", account, skipped)
    return result


def templates_sync_all() -> list[AccountSync]:
    """Every active channel's business account, synced; one account's failure does not stop
    the others."""
    accounts: dict[str, Channel] = {}
    for channel in Channel.objects.filter(is_active=True).exclude(business_account_id="").order_by("pk"):
        accounts.setdefault(channel.business_account_id.strip(), channel)
    done = []
    for account, channel in accounts.items():
        sync = AccountSync(business_account_id=account, channel=channel)
        try:
            sync.result = templates_sync(channel=channel)
        except ProviderError as exc:
            logger.warning("templates of account %s could not be listed: %s", account, exc)
            sync.error = exc
        done.append(sync)
    return done
