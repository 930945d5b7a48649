"""A customer's turn, written once, as async code on an event loop (`conversations.runtime`).

`message_handle` (a stored customer message): claim it and read everything at once. An
edit or a deletion (applied to its message when stored, by ingest) is not a new message:
no reply, no read receipt; a customer's edit has the edited message's details extracted
again. Anything else: mark it read; a voice note (stored, with an AI) is transcribed and its
transcript is its words from then on (`Message.words`); then, by what it asks for
(`decisions.inbound_action`): nothing; leave it to the person who owns the conversation (its
words' details are still extracted); acknowledge media the bot cannot understand, in the
customer's language; answer a command at once; or, for words (a text, a transcribed voice
note, a stored image with its caption), extract the customer's details and answer — after
REPLY_DEBOUNCE_SECONDS of quiet (`burst_reply`, queued as the debounced task) or at once.

`burst_reply` answers every unhandled message of the burst up to its message, unless a newer
one waits (its own task answers then); an image goes to the model as an image. The customer asking for a person hands over without
a model call; the model (or the offline agent) otherwise writes the reply, and an AI that
fails for good gets the holding message and the human queue (a model OpenAI refuses is an
alert for the admins too). A hand-off in business hours goes to the least busy available
agent; outside them the customer is told when a person is back (`_handoff_commit`). The
reply and the burst's "handled" mark are one commit (`sql.reply.commit`), so a turn that
runs twice sends one reply; the reply is then delivered at once (`delivery.deliver`).

Every model and provider call is the async client's; the ORM's rare parts (a profile's new
details, a new OpenAI conversation, a command) run on the loop's threads (`runtime.sync`).
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext_noop
from psycopg import Error as PsycopgError

from profiles.services import (
    language_code,
    profile_known_fields,
    profile_language_set,
    profile_missing_fields,
    profile_update_from_extraction,
)

from . import decisions, delivery, queueing, runtime
from .agent import extraction, offline, openai_client, replies, transcription
from .agent.commands import command_parse
from .agent.openai_client import AIError
from .agent.prompts import Said, fixed_message, image_data_url, media_acknowledgement
from .decisions import Action, Outcome
from .hours import business_hours_back_words, business_hours_next_open, business_hours_open
from .models import (
    LEASE,
    REVISION_TYPES,
    TEXT_TYPES,
    UNDERSTOOD_MEDIA_TYPES,
    AlertKind,
    Author,
    Message,
    MessageType,
    Owner,
    message_preview,
)
from .providers import provider_for
from .services import memory, sweeps
from .services.alerts import alert_raise
from .services.botconfig import (
    ActiveConfig,
    bot_config_cached,
    bot_config_fields,
    bot_config_for_channel,
)
from .services.commands import command_answer
from .services.desk import business_hours_of
from .services.media_content import media_contents, media_stored
from .services.openai_models import model_replace_hint
from .services.outbound import message_build
from .sql import claim as claim_sql
from .sql import reply as reply_sql

logger = logging.getLogger(__name__)

# The largest audio file OpenAI's transcription takes (25 MB); WhatsApp's own limit is 16 MB.
TRANSCRIPTION_MAX_BYTES = 25 * 1024 * 1024


async def message_handle(message_id: int) -> Outcome:
    """A stored customer message. Idempotent: a second run finds it claimed or handled."""
    try:
        claimed = await claim_sql.claim_load(message_id=message_id, lease=LEASE, images=openai_client.ai_configured())
    except (PsycopgError, DatabaseError) as exc:
        await _claim_failed(message_id, exc)
        raise
    if claimed is None:
        return Outcome.SKIPPED
    message, burst = claimed.message, claimed.burst
    with runtime.holding([message.pk]):
        conversation = message.conversation
        active = await _active_config(conversation)
        command = command_parse(message.text) if message.type == MessageType.TEXT else None
        media = await _media_understandable(message)
        action = decisions.inbound_action(type=message.type, owner=conversation.owner, command=command, understood=media)
        if action == Action.REVISED:
            return await _commit(message, [message], check_newer=False, usage=await _extract_again(message, active))
        _read_receipt(message)
        if action == Action.NOTHING:
            return await _commit(message, [message], check_newer=False)
        failure = None
        if media and message.type == MessageType.AUDIO:
            failure = await _transcribe(message)
            if failure:  # not understood after all: as any media the bot cannot understand
                action = decisions.inbound_action(type=message.type, owner=conversation.owner, command=None, understood=False)
        if action == Action.LEAVE:
            usage = await _extract(message, active) if message.type in TEXT_TYPES or media else {}
            return await _commit(message, [message], check_newer=False, usage=usage, error=failure)
        if action == Action.ACKNOWLEDGE:
            text = media_acknowledgement(
                type=message.type, language=conversation.profile.language, configured=active.config.fixed_messages
            )
            return await _commit(
                message, [message], reply=replies.Reply(text=text), active=active, check_newer=False, error=failure,
                spoken=Outcome.ACKNOWLEDGED,
            )  # fmt: skip
        if action == Action.COMMAND:
            fields = bot_config_fields(config=active.config)
            text = await runtime.sync(
                command_answer, conversation=conversation, command=command[0], alias=command[1], fields=fields,
                extra_fields=active.config.extra_fields, before_id=message.pk,
            )  # fmt: skip
            return await _commit(message, [message], reply=replies.Reply(text=text), active=active, check_newer=False)
        return await _words(message, burst, active)


async def _media_understandable(message: Message) -> bool:
    """A voice note or an image the model can take: stored, and an AI configured (the
    offline agent acknowledges them)."""
    if message.type not in UNDERSTOOD_MEDIA_TYPES or not openai_client.ai_configured():
        return False
    return await runtime.sync(media_stored, message_id=message.pk)


async def _transcribe(message: Message) -> dict | None:
    """A voice note's words stored on it (its `transcript`, one statement that also moves the
    conversation for the console). None when it has them; else why not, as the message's
    error fields (the voice note stays stored, for a person to hear)."""
    if message.transcript:
        return None  # a turn run again: transcribed by the first
    stored = (await runtime.sync(media_contents, message_ids=[message.pk], max_bytes=TRANSCRIPTION_MAX_BYTES)).get(message.pk)
    if stored is None:
        return _transcription_failure("The voice note could not be read from the storage.")
    language = message.conversation.profile.language
    try:
        heard = await transcription.transcribe(audio=stored.content, mime_type=stored.mime_type, language=language)
    except AIError as exc:
        logger.warning("message %s: the voice note could not be transcribed: %s", message.pk, exc)
        await _model_refused(exc)
        return _transcription_failure(f"{exc} (after {exc.attempts} attempt(s))", code=f"openai_{exc.http_status or 'error'}")
    if not heard.text:
        return _transcription_failure("The transcription has no words.")
    await reply_sql.transcript_set(message_id=message.pk, transcript=heard.text, now=timezone.now())
    message.transcript = heard.text
    logger.info("message %s: voice note transcribed by %s (%s s)", message.pk, heard.model, heard.seconds)
    return None


def _transcription_failure(detail: str, *, code: str = "transcription") -> dict:
    return {"error_code": code[:32], "error_title": gettext_noop("The voice note could not be transcribed."), "error_detail": detail}


async def _claim_failed(message_id: int, error: Exception) -> None:
    """The claim statement failed, and the attempt it counts went with it: counted apart, so
    the sweeper gives up on the message after TURN_MAX_ATTEMPTS (the error is the caller's)."""
    try:
        counted = await runtime.sync(sweeps.inbound_attempt_count, message_id=message_id)
    except Exception:
        logger.exception("message %s: could not count the attempt of a failed claim", message_id)
        counted = False
    logger.error("message %s: the claim failed (attempt %s): %s", message_id, "counted" if counted else "not counted", error)


async def burst_reply(message_id: int) -> Outcome:
    """The debounced reply to the burst of texts that ends with `message_id`."""
    loaded = await claim_sql.load(message_id=message_id, images=openai_client.ai_configured())
    if loaded is None or loaded.message.handled_at:
        return Outcome.DONE  # answered, or deleted with its conversation while the reply waited
    with runtime.holding(m.pk for m in loaded.burst):
        return await _answer(loaded.message, loaded.burst, await _active_config(loaded.message.conversation))


async def _words(message: Message, burst: list[Message], active: ActiveConfig) -> Outcome:
    """A customer's words in a bot-owned conversation: the details extracted, the reply."""
    model = openai_client.ai_configured()
    if settings.REPLY_DEBOUNCE_SECONDS > 0:
        if model:
            # Queued first: the quiet period runs while the (slow) extraction call does.
            await runtime.sync(_reply_queue, message.pk)
            await _usage_store(message, await _extract(message, active))
        else:
            # Instant without a model; done first so the reply knows what was just said.
            await _extract(message, active)
            await runtime.sync(_reply_queue, message.pk)
        return Outcome.QUEUED
    if not model:
        await _extract(message, active)
        return await _answer(message, burst, active)
    # No quiet period: the reply now, the extraction beside it.
    extracting = asyncio.create_task(_extract(message, active))
    await asyncio.sleep(0)  # its request goes out first
    return await _answer(message, burst, active, extracting=extracting)


async def _answer(message: Message, burst: list[Message], active: ActiveConfig, *, extracting: asyncio.Task | None = None) -> Outcome:
    """The reply to the burst ending with `message`. `extracting`: the extraction of its text,
    running beside; its usage goes to the reply's commit when it has finished by then (one
    statement less), else it is stored once it has (also when the reply failed: the
    extraction's cost is kept)."""
    usage_committed = False
    try:
        not_ours = decisions.burst_not_ours(message_id=message.pk, burst_ids=[m.pk for m in burst])
        if not_ours:
            return not_ours
        conversation = message.conversation
        if conversation.owner != Owner.BOT:
            # A person owns it: nothing to say, so the commit's HANDLED is the turn's HUMAN.
            outcome = await _commit(message, burst, check_newer=False)
            return Outcome.HUMAN if outcome == Outcome.HANDLED else outcome
        if decisions.handoff_asked([m.words for m in burst]):
            return await _handoff(message, burst, active, reason=replies.HANDOFF_ASKED)
        try:
            reply = await _reply_generate(message, burst, active)
        except AIError as exc:
            return await _ai_unavailable(message, burst, active, exc)
        synced = openai_client.ai_configured()  # the burst is in the OpenAI conversation now
        if reply.handoff_reason:
            return await _handoff(message, burst, active, reason=reply.handoff_reason, synced=synced)
        usage = extracting.result() if extracting is not None and extracting.done() else None
        outcome = await _commit(message, burst, reply=reply, active=active, usage=usage, synced=synced)
        usage_committed = usage is not None  # `_commit` stored it, with the burst or on its own
        return outcome
    finally:
        if extracting is not None and not usage_committed:
            await _usage_store(message, await extracting)


async def _reply_generate(message: Message, burst: list[Message], active: ActiveConfig) -> replies.Reply:
    conversation = message.conversation
    profile, config = conversation.profile, active.config
    fields = bot_config_fields(config=config)
    known, missing = profile_known_fields(profile=profile, fields=fields), profile_missing_fields(profile=profile, fields=fields)
    texts = [m.words for m in burst]
    if not openai_client.ai_configured():
        burst_ids = {m.pk for m in burst}
        replied_before, after_person = await runtime.sync(memory.offline_context, conversation_id=conversation.pk)
        return replies.offline_reply(
            texts=texts, language=profile.language, first_reply=not replied_before, first_name=profile.first_name,
            learned=any((p or {}).get("message_id") in burst_ids for p in profile.provenance.values()),
            missing=missing, extra_fields=config.extra_fields, after_person=after_person,
        )  # fmt: skip
    openai_conversation = await _openai_conversation(message, burst, active)
    await _catch_up(message, burst, openai_conversation)
    request = replies.reply_request(
        config=config, said=await _said(burst), known=known, missing=missing, summary=conversation.summary,
        openai_conversation=openai_conversation,
    )  # fmt: skip
    reply = replies.reply_read(await openai_client.response_create(**request))
    for call_id in reply.tool_calls:
        try:
            await openai_client.conversation_items_add(conversation_id=openai_conversation, items=replies.tool_output_items(call_id))
        except AIError as exc:
            logger.warning("could not record the hand-off's tool output in %s: %s", openai_conversation, exc)
    return reply


async def _catch_up(message: Message, burst: list[Message], openai_conversation: str) -> None:
    """What the OpenAI conversation missed since its watermark (a hand-off's texts, the staff's
    replies) added to it before the reply, so the model neither asks again nor contradicts
    the staff; the watermark moved past them. A failure is logged and the reply goes on (the
    next one tries again)."""
    conversation = message.conversation
    rows = await runtime.sync(
        memory.unsynced_rows, conversation_id=conversation.pk, after_id=conversation.openai_synced_message_id,
        burst_ids=[m.pk for m in burst],
    )  # fmt: skip
    if not rows:
        return
    try:
        await openai_client.conversation_items_add(conversation_id=openai_conversation, items=replies.catch_up_items(rows))
    except AIError as exc:
        logger.warning("conversation %s: could not add %s missed message(s) to %s: %s", conversation.pk, len(rows), openai_conversation, exc)
        return
    await runtime.sync(
        memory.openai_synced_move, conversation_id=conversation.pk, openai_conversation=openai_conversation, through_id=rows[-1].id
    )


async def _said(burst: list[Message]) -> list[Said]:
    """What the customer said in each message of the burst: its words, and an image as the
    image itself (read from the storage; one too large goes as its caption only)."""
    images = [m.pk for m in burst if m.type == MessageType.IMAGE]
    stored = await runtime.sync(media_contents, message_ids=images, max_bytes=settings.OPENAI_IMAGE_MAX_BYTES) if images else {}
    return [
        Said(words=m.words, image_url=image_data_url(content=stored[m.pk].content, mime_type=stored[m.pk].mime_type) if m.pk in stored else "")
        for m in burst
    ]


async def _openai_conversation(message: Message, burst: list[Message], active: ActiveConfig) -> str:
    """The OpenAI conversation to answer in: the stored one, or a new one when there is none
    yet or the thread was quiet for CONVERSATION_ROTATE_HOURS (seeded with a summary)."""
    conversation = message.conversation
    now, window = timezone.now(), timezone.timedelta(hours=settings.CONVERSATION_ROTATE_HOURS)
    current = conversation.openai_conversation_id
    if decisions.openai_conversation_current(
        conversation_id=current, started_at=conversation.openai_conversation_started_at, now=now, rotate_after=window
    ):
        return current
    previous_at = await runtime.sync(memory.previous_message_at, conversation_id=conversation.pk, before_id=burst[0].pk)
    rotates = decisions.openai_conversation_rotates(previous_message_at=previous_at, now=now, rotate_after=window)
    if current and not rotates:
        return current
    summary = conversation.summary
    if current:
        summary = await _summary(message, burst, active)
    new_id = await openai_client.conversation_create(
        items=replies.conversation_seed(summary), metadata={"whatsbot_conversation_id": str(conversation.pk)}
    )
    # A rotation's summary covers everything before the burst (staff replies too); a first
    # OpenAI conversation is told what came before it by `_catch_up`.
    synced_id = burst[0].pk - 1 if current else None
    return await runtime.sync(
        memory.openai_conversation_store, conversation=conversation, current=current, new_id=new_id, summary=summary, synced_id=synced_id
    )


async def _summary(message: Message, burst: list[Message], active: ActiveConfig) -> str:
    """A short summary of the thread so far (the model's, or a plain one if it fails)."""
    conversation = message.conversation
    rows = await runtime.sync(memory.summary_rows, conversation_id=conversation.pk, before_id=burst[0].pk)
    lines = replies.summary_lines(rows=rows, previous_summary=conversation.summary)
    known = profile_known_fields(profile=conversation.profile, fields=bot_config_fields(config=active.config))
    try:
        response = await openai_client.response_create(**replies.summary_request(config=active.config, lines=lines))
    except AIError as exc:
        logger.info("conversation %s: summary by the model failed, using a plain one: %s", conversation.pk, exc)
        response = None
    return replies.summary_read(response, lines=lines, known=known)


async def _handoff(message: Message, burst: list[Message], active: ActiveConfig, *, reason: str, synced: bool = False) -> Outcome:
    text = fixed_message("handoff", language=message.conversation.profile.language, configured=active.config.fixed_messages)
    return await _handoff_commit(message, burst, active, text=text, reason=reason, spoken=Outcome.HANDOFF, synced=synced)


async def _handoff_commit(
    message: Message, burst: list[Message], active: ActiveConfig, *, text: str, reason: str, spoken: Outcome,
    error: dict | None = None, synced: bool = False,
) -> Outcome:  # fmt: skip
    """Every hand-off of a turn: in the channel's business hours, `text` and the least busy
    available agent (assigned by the commit, `sql.assign`); outside them, the "away" message
    saying when a person is back, and the queue."""
    conversation = message.conversation
    hours = await runtime.sync(business_hours_of, channel=conversation.channel)
    now = timezone.now()
    in_hours = business_hours_open(hours, now)
    back = None if in_hours else business_hours_next_open(hours, now)
    if back is not None:
        language = conversation.profile.language
        text = fixed_message(
            "away", language=language, configured=active.config.fixed_messages, back=business_hours_back_words(back, language=language)
        )
    reply = replies.Reply(text=text, handoff_reason=reason)
    return await _commit(message, burst, reply=reply, active=active, error=error, spoken=spoken, assign=in_hours, synced=synced)


async def _ai_unavailable(message: Message, burst: list[Message], active: ActiveConfig, error: AIError) -> Outcome:
    """OpenAI failed for good: the holding message once, the human queue, the error shown on
    the customer's messages (which stay stored, answerable by a person)."""
    logger.warning("conversation %s: AI unavailable, handing over: %s", message.conversation_id, error)
    await _model_refused(error)
    text = fixed_message("holding", language=message.conversation.profile.language, configured=active.config.fixed_messages)
    failure = {
        "error_code": f"openai_{error.http_status or 'error'}"[:32],
        "error_title": gettext_noop("The AI could not answer: the conversation went to the human queue."),
        "error_detail": f"{error} (after {error.attempts} attempt(s))",
    }
    return await _handoff_commit(
        message, burst, active, text=text, reason=f"{replies.HANDOFF_AI_UNAVAILABLE}: {error}"[:255], error=failure, spoken=Outcome.HOLDING,
    )  # fmt: skip


async def _model_refused(error: AIError) -> None:
    """An alert for the admins when OpenAI refused the model: every turn would meet it until
    someone chooses another."""
    if not error.refused_model:
        return
    text = f"OpenAI refuses {error.refused_model}: {error} {model_replace_hint(error.refused_model)}"
    try:
        await runtime.sync(alert_raise, kind=AlertKind.MODEL_REFUSED, subject=error.refused_model, text=text)
    except Exception:
        logger.exception("could not record the alert for the refused model %s", error.refused_model)


async def _commit(
    message: Message, burst: list[Message], *, reply: replies.Reply | None = None, active: ActiveConfig | None = None,
    check_newer: bool = True, error: dict | None = None, usage: dict | None = None, spoken: Outcome = Outcome.SENT,
    synced: bool = False,
    assign: bool = False,
) -> Outcome:  # fmt: skip
    """Mark the burst handled with `reply` (stored and delivered only in a bot-owned
    conversation), in one commit; then deliver the reply. `usage`: the extraction's of
    `message`, written by the commit, or on its own when the burst was not ours to mark.
    `synced`: the model was given the burst (the OpenAI conversation's watermark moves to it).
    `assign`: a hand-off goes to the least busy available agent too."""
    conversation = message.conversation
    now = timezone.now()
    row = None
    if reply is not None:
        row = message_build(
            conversation=conversation, text=reply.text, author=Author.BOT, bot_config_version=active.version,
            claim_for_delivery=True, now=now, **reply.usage,
        )  # fmt: skip
    committed = await reply_sql.commit(
        reply_sql.Commit(
            conversation_id=conversation.pk, burst_ids=[m.pk for m in burst], now=now, check_newer=check_newer, reply=row,
            preview=message_preview(type=MessageType.TEXT, text=reply.text) if reply else "",
            handoff_reason=reply.handoff_reason if reply else "", assign=assign, error=error, usage=(message.pk, usage) if usage else None,
            images=openai_client.ai_configured(), synced=synced,
        )
    )  # fmt: skip
    if usage and not committed.done:
        await _usage_store(message, usage)
    if committed.reply is not None:
        await delivery.deliver(committed.reply)
    return decisions.commit_outcome(
        done=committed.done, newer=committed.newer, check_newer=check_newer, stored_reply=committed.reply is not None,
        reply_wanted=reply is not None, handoff=bool(reply and reply.handoff_reason), spoken=spoken,
    )  # fmt: skip


async def _active_config(conversation) -> ActiveConfig:
    """The channel's bot configuration: this process's copy, read again on a thread when old."""
    return bot_config_cached(channel=conversation.channel) or await runtime.sync(bot_config_for_channel, channel=conversation.channel)


async def _extract(message: Message, active: ActiveConfig) -> dict:
    """The customer's details in `message`'s words (an image's: its caption), stored on the profile (validated, with
    provenance); the model call's usage ({} without one, or when it failed). Never raises:
    a failing extraction is logged and the turn goes on."""
    fields = bot_config_fields(config=active.config)
    if not message.words.strip() or not fields:
        return {}
    usage: dict = {}
    try:
        if openai_client.ai_configured():
            request = extraction.extraction_request(text=message.words, config=active.config, fields=fields)
            response = await openai_client.response_create(**request)
            values, usage = extraction.extraction_result(response, config=active.config, fields=fields)
        else:
            values = offline.details_extract(text=message.words)
    except AIError as exc:
        logger.warning("message %s: extraction failed: %s", message.pk, exc)
        await _model_refused(exc)
        return {}
    except Exception:
        logger.exception("message %s: extraction failed", message.pk)
        return {}
    if _details_found(message, fields, values):
        try:
            await runtime.sync(_details_store, message, active, fields, values)
        except Exception:
            logger.exception("message %s: storing the extracted details failed", message.pk)
    return usage


async def _extract_again(revision: Message, active: ActiveConfig) -> dict:
    """An edit of a customer's message: the message's details extracted again from its new
    text (ingest put it there), as that message's; the call's usage. Nothing for a deletion,
    for an edit of the business's own messages, and when the message is not stored yet (its
    own turn reads the new text) or is not words the turn would have extracted from."""
    if revision.type != MessageType.EDIT:
        return {}
    edited = await runtime.sync(_edited_message, revision)
    return await _extract(edited, active) if edited is not None and edited.type in TEXT_TYPES else {}


def _edited_message(revision: Message) -> Message | None:
    edited = (
        Message.objects.filter(
            conversation_id=revision.conversation_id, wamid=revision.context_wamid, author=Author.CUSTOMER, deleted_at__isnull=True
        )
        .exclude(type__in=REVISION_TYPES)
        .only("id", "conversation_id", "type", "text")
        .first()
    )
    if edited is not None:
        edited.conversation = revision.conversation  # with its profile, as the claim read it
    return edited


def _details_found(message: Message, fields: list[str], values: dict) -> bool:
    """Whether the profile has anything to take (most texts hold nothing new: then the
    database is not touched at all)."""
    language = language_code(values.get("language"))
    if language and language != message.conversation.profile.language:
        return True
    return any(str(getattr(values.get(f), "value", values.get(f)) or "").strip() for f in fields)


def _details_store(message: Message, active: ActiveConfig, fields: list[str], values: dict) -> None:
    profile = message.conversation.profile
    if values.get("language"):
        profile_language_set(profile=profile, language=values["language"])
    profile_update_from_extraction(
        profile=profile, values=values, fields=fields, message=message, order_number_pattern=active.config.order_number_pattern
    )


async def _usage_store(message: Message, usage: dict) -> None:
    if usage:
        try:
            await reply_sql.usage_set(message_id=message.pk, usage=usage)
        except Exception:
            logger.exception("message %s: could not store the extraction's usage", message.pk)


def _reply_queue(message_id: int) -> None:
    # If the broker is down the message stays unhandled and the sweeper takes it up again
    # once its lease has run out.
    queueing.enqueue(queueing.AGENT_REPLY, [message_id], countdown=settings.REPLY_DEBOUNCE_SECONDS)


_receipts: set[asyncio.Task] = set()


def _read_receipt(message: Message) -> None:
    """Blue ticks and the typing indicator (best effort, not waited for)."""
    if not message.wamid:
        return
    task = asyncio.create_task(_mark_read(message))
    _receipts.add(task)
    task.add_done_callback(_receipts.discard)


async def _mark_read(message: Message) -> None:
    try:
        await provider_for(message.conversation.channel).mark_read(message.wamid, typing=True)
    except Exception as exc:  # a provider that cannot (yet): its reply will fail, visibly
        logger.info("message %s: could not mark read: %s", message.pk, exc)
