"""An outbound message handed to its provider, on the event loop (`conversations.runtime`).

`deliver` sends a message this worker holds (a reply its turn just committed, claimed with
it) and records "sent" with the provider's id. `message_deliver` is the task's: it claims a
pending message first (a staff member's reply, a retry, the sweeper's).

A message the provider accepted is never sent twice. When "sent" cannot be written (the
database is down), the provider's id is kept outside the database (`outbound.accepted_*`)
and the write is retried, as a write, a bounded number of times; any later delivery attempt
of the message finds the kept id and records it instead of sending again.

A customer who stopped marketing messages never receives a marketing template: `deliver`
refuses it for good before the provider is called (`ClientProfile.marketing_messages`).

A file staff send (a media message's, or a template header's) is uploaded to the provider as a
step of its delivery: the provider's id is kept on its `MediaFile`, so an attempt after a failed
send names the file uploaded before instead of uploading it again. A failed upload is a failed
attempt like a failed send.
"""

from __future__ import annotations

import asyncio
import logging

from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext_noop
from psycopg import Error as PsycopgError

from integrations.base import Provider, ProviderError

from . import runtime
from .decisions import Outcome
from .models import Message, MessageType
from .providers import outgoing, provider_for, recipient_of
from .services import outbound
from .sql import reply as reply_sql
from .sql import status as status_sql

logger = logging.getLogger(__name__)

# Meta's error code for a marketing template to a customer who stopped marketing messages.
MARKETING_STOPPED = 131050

# Message types whose file may be ours to upload (`MediaFile`): a template's is its header's.
UPLOADED_TYPES = (
    MessageType.IMAGE, MessageType.DOCUMENT, MessageType.AUDIO, MessageType.VIDEO, MessageType.STICKER, MessageType.TEMPLATE,
)  # fmt: skip

# Tries of writing "sent" for a message the provider accepted, and the first wait between them (doubling).
SENT_WRITE_ATTEMPTS = 6
SENT_WRITE_BACKOFF_SECONDS = 0.5


async def message_deliver(message_id: int) -> Outcome:
    """One delivery attempt of a pending message. Safe to run twice: the claim decides."""
    message = await runtime.sync(outbound.outbound_claim, message_id=message_id)
    if message is None:
        return Outcome.SKIPPED
    if message.attempts > 1:
        accepted = await runtime.sync(outbound.accepted_recall, message_id=message.pk)
        if accepted:
            # The provider took it on an earlier attempt whose "sent" was never written.
            with runtime.holding([message.pk]):
                return await _sent_record(message, accepted, kept=True)
    return await deliver(message)


async def deliver(message: Message) -> Outcome:
    """Send a message this worker has claimed (with its conversation, channel and profile)."""
    conversation = message.conversation
    with runtime.holding([message.pk]):
        try:
            _consent_check(message)
            provider = provider_for(conversation.channel)
            media_id = await _media_upload(provider, message) if message.type in UPLOADED_TYPES else ""
            sending = outgoing(message, media_id=media_id)
            provider_id = await provider.send(sending, to=recipient_of(conversation.profile))
        except ProviderError as exc:
            retries = await runtime.sync(outbound.delivery_failed, message=message, error=exc)
            return Outcome.RETRY if retries else Outcome.FAILED
        except Exception:
            # Nothing is known to have left: the message stays pending for the sweeper.
            logger.exception("message %s: delivery failed, the sweeper will try again", message.pk)
            return Outcome.SKIPPED
        return await _sent_record(message, provider_id)


async def _media_upload(provider: Provider, message: Message) -> str:
    """The provider's id of the message's file: uploaded by the first attempt that gets here,
    kept on the file's row for the attempts after it ("" when the message has no file of ours)."""
    upload = await runtime.sync(outbound.media_upload_get, message_id=message.pk)
    if upload is None:
        return ""
    if upload.provider_media_id:
        return upload.provider_media_id
    media_id = await provider.upload_media(upload.content, mime_type=upload.mime_type, filename=upload.filename)
    await runtime.sync(outbound.media_uploaded, message_id=message.pk, provider_media_id=media_id)
    return media_id


def _consent_check(message: Message) -> None:
    """A customer who stopped marketing messages never receives a marketing template: it
    fails for good before the provider is called, with the reason staff see on it."""
    if message.marketing_template and message.conversation.profile.marketing_stopped:
        raise ProviderError(
            "the customer stopped marketing messages", permanent=True, code=MARKETING_STOPPED,
            reason_text=gettext_noop("The customer stopped marketing messages: a marketing template is not sent to them."),
            detail=gettext_noop(
                "They can resume them in WhatsApp; until then, only service replies and utility templates reach them."
            ),
        )  # fmt: skip


async def _sent_record(message: Message, provider_id: str, *, kept: bool = False) -> Outcome:
    """Write "sent" for `provider_id` (`kept`: the id was kept aside by an earlier attempt)."""
    sent_at = timezone.now()
    delay = SENT_WRITE_BACKOFF_SECONDS
    for attempt in range(1, SENT_WRITE_ATTEMPTS + 1):
        try:
            early = await reply_sql.mark_sent(
                message_id=message.pk, conversation_id=message.conversation_id, wamid=provider_id, sent_at=sent_at
            )
            break
        except (PsycopgError, DatabaseError) as exc:
            if attempt == 1:
                await _accepted_keep(message, provider_id)
            if attempt == SENT_WRITE_ATTEMPTS:
                logger.error(
                    "message %s: sent as %s but \"sent\" could not be written (%s); the next delivery attempt records it without sending",
                    message.pk, provider_id, exc,
                )  # fmt: skip
                return Outcome.SENT
            logger.warning("message %s: sent as %s, writing \"sent\" failed (%s); retrying the write", message.pk, provider_id, exc)
            await asyncio.sleep(delay)
            delay *= 2
    if attempt > 1 or kept:
        await runtime.sync(outbound.accepted_forget, message_id=message.pk)
    if early:
        # The provider reported statuses before the send stored the wamid: apply them now.
        await runtime.sync(status_sql.statuses_apply_now, [provider_id])
    return Outcome.SENT


async def _accepted_keep(message: Message, provider_id: str) -> None:
    try:
        await runtime.sync(outbound.accepted_remember, message_id=message.pk, provider_id=provider_id)
    except Exception:
        logger.exception("message %s: could not keep the provider's id %s aside", message.pk, provider_id)
