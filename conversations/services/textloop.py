"""A customer text handled on the worker's event loop (`conversations.eventloop`).

The same steps, rules and statements as the threads' path (`pipeline.inbound_handle`,
`agent.service`), for the common case on PostgreSQL with OpenAI configured: a text in a
bot-owned conversation that is not a command. The claim, the reply's commit, "sent" and
the extraction's usage are the prepared statements of `fastpath` on the loop's own
connections; the two model calls (extraction and reply, at the same time) are the async
OpenAI client's. Everything else, from the claimed message on, goes to the threads' code
on a kept thread (`run_sync`): commands, a human-owned conversation, a hand-off, the
holding message, a first or rotated OpenAI conversation, a profile update, the Graph API.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.utils import timezone

from .. import eventloop
from ..agent import extraction, openai_client, service
from ..agent.commands import command_parse
from ..agent.openai_client import AIError
from ..eventloop import run_sync
from ..models import TEXT_TYPES, Message, MessageType, Owner
from ..transports import transport_for
from ..whatsapp_client import WhatsAppError
from . import fastpath, pipeline
from .botconfig import ActiveConfig, bot_config_cached, bot_config_fields, bot_config_for_channel
from .inbound import message_preview
from .outbound import LEASE, message_delivered_async

logger = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether the Celery task hands texts to the event loop (else its thread does all)."""
    return settings.AGENT_LOOP and fastpath.enabled() and openai_client.ai_configured()


def submit(*, message_id: int) -> str:
    """From the Celery task: hand the message to this process's loop and return at once
    (waits only while the loop is full)."""
    eventloop.get().submit(inbound_handle, message_id)
    return "submitted"


def submit_reply(*, message_id: int) -> str:
    """From the debounced reply's task (`agent_reply`), likewise."""
    eventloop.get().submit(burst_reply, message_id)
    return "submitted"


async def inbound_handle(message_id: int) -> str:
    """`pipeline.inbound_handle` on the loop. Idempotent as it is: the claim decides."""
    async with eventloop.current().connection() as conn:
        claimed = await fastpath.inbound_claim_load_async(conn, message_id=message_id, lease=LEASE)
    if claimed is None:
        return "skipped"
    message, burst = claimed.message, claimed.burst
    conversation = message.conversation
    active = await _active_config(conversation)
    command = message.type == MessageType.TEXT and command_parse(message.text)
    if message.type not in TEXT_TYPES or conversation.owner != Owner.BOT or command:
        return await run_sync(pipeline.inbound_handle_claimed, message=message, burst=burst)
    _read_receipt(message)
    fields = bot_config_fields(config=active.config)
    if settings.REPLY_DEBOUNCE_SECONDS > 0:
        # The reply is the debounced task's; queued first, as the threads' path does.
        await run_sync(service.reply_queue, message)
        await _usage_store(message, await _extract(message=message, active=active, fields=fields))
        return "queued"
    # No quiet period: the reply now, the extraction beside it (its usage goes with the
    # reply's commit when it has finished by then).
    extracting = asyncio.create_task(_extract(message=message, active=active, fields=fields))
    # Its request goes out first, so with equal latencies it is back by the reply's commit,
    # which then stores its usage too (one statement less).
    await asyncio.sleep(0)
    usage_stored = False
    try:
        outcome, usage_stored = await _answer(message=message, burst=burst, active=active, extracting=extracting)
    finally:
        usage = await extracting
        if not usage_stored:  # also when the reply failed: the extraction's cost is recorded
            try:
                await _usage_store(message, usage)
            except Exception:
                logger.exception("message %s: could not store the extraction's usage", message.pk)
    return outcome


async def burst_reply(message_id: int) -> str:
    """`service.burst_answer` on the loop: the debounced reply to the burst of texts that
    ends with `message_id` (after REPLY_DEBOUNCE_SECONDS of quiet)."""
    async with eventloop.current().connection() as conn:
        loaded = await fastpath.message_load_async(conn, message_id=message_id)
    if loaded is None or loaded.message.handled_at:
        return "done"
    message, burst = loaded.message, loaded.burst
    conversation = message.conversation
    if conversation.owner != Owner.BOT:
        return await run_sync(service.burst_answer, message_id=message_id, message=message, burst=burst)
    active = await _active_config(conversation)
    outcome, _usage_stored = await _answer(message=message, burst=burst, active=active, extracting=None)
    return outcome


async def _answer(
    *, message: Message, burst: list[Message], active: ActiveConfig, extracting: asyncio.Task | None
) -> tuple[str, bool]:
    """`service.burst_answer` for a claimed text; (outcome, whether the extraction's usage
    was stored with the reply)."""
    conversation = message.conversation
    not_ours = service.burst_not_ours(message=message, burst=burst)
    if not_ours:
        return not_ours, False
    handoff = service.handoff_asked(burst)
    if handoff is not None:
        return await run_sync(service.burst_commit, conversation=conversation, burst=burst, active=active, reply=handoff), False
    try:
        openai_conversation = service.openai_conversation_current(conversation=conversation) or await run_sync(
            service.openai_conversation_for, conversation=conversation, burst=burst, active=active
        )
        answer = await openai_client.response_create_async(
            **service.reply_request(conversation=conversation, burst=burst, active=active, openai_conversation=openai_conversation)
        )
        reply, calls = service.reply_read(answer)
    except AIError as exc:
        return await run_sync(service.ai_unavailable, conversation=conversation, burst=burst, active=active, error=exc), False
    if calls or reply.handoff_reason:
        for call_id in calls:
            await run_sync(service.tool_call_answer, openai_conversation=openai_conversation, call_id=call_id)
        return await run_sync(service.burst_commit, conversation=conversation, burst=burst, active=active, reply=reply), False

    sent = service.reply_row(conversation=conversation, active=active, reply=reply, claimed=True, now=timezone.now())
    usage = extracting.result() if extracting is not None and extracting.done() else None
    async with eventloop.current().connection() as conn:
        outcome = await fastpath.reply_commit_async(
            conn, conversation=conversation, burst=burst, reply=sent, preview=message_preview(type=MessageType.TEXT, text=reply.text),
            usage=(message.pk, usage) if usage else None,
        )  # fmt: skip
    if outcome is None:
        # Not the bot's conversation any more (a staff member took over meanwhile).
        return await run_sync(service.burst_commit, conversation=conversation, burst=burst, active=active, reply=reply), False
    if outcome == "sent":
        await message_delivered_async(message=sent)
    return outcome, bool(usage) and outcome == "sent"


async def _active_config(conversation) -> ActiveConfig:
    """`bot_config_for_channel`, read on a kept thread only when this process's copy is old."""
    channel = conversation.channel
    return bot_config_cached(channel=channel) or await run_sync(bot_config_for_channel, channel=channel)


async def _extract(*, message: Message, active: ActiveConfig, fields: list[str]) -> dict:
    """`extraction.details_extract` on the loop; the call's usage ({} when it failed or
    there was nothing to extract). Never raises: a failing extraction is logged, as there."""
    if not message.text.strip() or not fields:
        return {}
    try:
        answer = await openai_client.response_parse_async(
            **extraction.extraction_request(message=message, config=active.config, fields=fields)
        )
        values, usage = extraction.extraction_result(answer)
    except AIError as exc:
        logger.warning("message %s: extraction failed: %s", message.pk, exc)
        return {}
    except Exception:
        logger.exception("message %s: extraction failed", message.pk)
        return {}
    if extraction.details_store_needed(message=message, fields=fields, values=values):
        try:
            await run_sync(extraction.details_store, message=message, config=active.config, fields=fields, values=values)
        except Exception:
            logger.exception("message %s: storing the extracted details failed", message.pk)
    return usage


async def _usage_store(message: Message, usage: dict) -> None:
    if usage:
        async with eventloop.current().connection() as conn:
            await fastpath.message_usage_set_async(conn, message_id=message.pk, **usage)


_receipts: set[asyncio.Task] = set()


def _read_receipt(message: Message) -> None:
    """The read receipt (best effort, as `message_mark_read`), not waited for."""
    if not message.wamid:
        return
    try:
        transport = transport_for(message.conversation.channel)
    except WhatsAppError as exc:  # a provider that cannot send yet: its reply will fail, visibly
        logger.info("message %s: could not mark read: %s", message.pk, exc)
        return
    task = asyncio.create_task(transport.mark_read_async(message, typing=True))
    _receipts.add(task)
    task.add_done_callback(_receipt_done)


def _receipt_done(task: asyncio.Task) -> None:
    _receipts.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.info("could not mark a message read: %s", task.exception())
