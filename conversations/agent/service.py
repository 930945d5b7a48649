"""The AI agent: answers a burst of customer texts, hands over to a human, keeps the
per-customer OpenAI conversation (created on first need, rotated when idle).

Flow for one customer text (`text_message_handle`, called by the inbound pipeline):
- a command (`/reset`, `/history`, `/info`) is answered at once;
- a human-owned conversation gets no reply (extraction still runs);
- otherwise `agent_reply` is queued after REPLY_DEBOUNCE_SECONDS and the extraction runs.

`burst_answer` (the debounced task) answers every unhandled text up to its message, unless a
newer one exists: then the newer message's task answers the whole burst. The model is called
outside any transaction; the reply is committed under a lock on the conversation row after
checking again that nothing newer arrived (else the reply is stale and dropped) and that
every message of the burst is still unanswered (else another run answered: a sweeper or a
redelivered task never causes a second reply).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import Exists, F
from django.utils import timezone

from profiles.services import profile_known_fields, profile_missing_fields

from ..models import TEXT_TYPES, Author, Conversation, Direction, Message, MessageType, Owner
from ..queueing import enqueue
from ..services.botconfig import ActiveConfig, bot_config_fields, bot_config_for_channel
from ..services.inbound import message_preview
from ..services import fastpath
from ..services.outbound import message_deliver_now, message_delivery_queue, message_outbound_build, message_send_text
from . import extraction, offline, openai_client
from .commands import command_answer, command_parse
from .openai_client import AIError, Usage
from .prompts import (
    DEFAULT_HANDOFF_MESSAGE,
    DEFAULT_HOLDING_MESSAGE,
    SUMMARY_INSTRUCTIONS,
    cost_estimate,
    fields_context,
    instructions_with_context,
    reply_tools,
)

logger = logging.getLogger(__name__)


# The customer asking for a person, in Italian or English.
_HUMAN_REQUEST = re.compile(
    r"\b(?:operator[ei]|operatore|operatrice|persona\s+(?:vera|reale|fisica)|essere\s+umano|un\s+umano|"
    r"parlare\s+con\s+(?:qualcuno|una\s+persona|un\s+collega|un\s+responsabile)|assistenza\s+umana|"
    r"(?:a|an|real|actual)\s+human|human\s+(?:agent|being|operator|support)|(?:real|actual|live)\s+person|"
    r"(?:customer\s+service\s+)?representative|(?:human|live|real)\s+operator|"
    r"(?:talk|speak|chat)\s+(?:to|with)\s+(?:someone|somebody|a\s+person|an?\s+agent|an?\s+operator|a\s+real))\b",
    re.IGNORECASE,
)


def human_requested(text: str) -> bool:
    return bool(_HUMAN_REQUEST.search(text))


def text_message_handle(*, message: Message, burst: list[Message] | None = None) -> str:
    """What the pipeline does with a claimed customer text. `burst`: the conversation's
    unanswered texts, read with the message (else read when needed)."""
    conversation = message.conversation
    active = bot_config_for_channel(channel=conversation.channel)
    fields = bot_config_fields(config=active.config)
    if conversation.owner == Owner.HUMAN:
        extraction.details_extract(message=message, config=active.config, fields=fields)
        return "handled" if _burst_mark_handled([message]) else "skipped"
    command = command_parse(message.text) if message.type == MessageType.TEXT else None
    if command:
        text = command_answer(
            conversation=conversation, command=command[0], alias=command[1], fields=fields,
            extra_fields=active.config.extra_fields, before_id=message.pk,
        )  # fmt: skip
        return burst_commit(conversation=conversation, burst=[message], active=active, reply=Reply(text=text), check_newer=False)
    if settings.REPLY_DEBOUNCE_SECONDS <= 0:
        # No quiet period: this task answers at once, with the extraction beside it.
        return _answer_now(message=message, active=active, fields=fields, burst=burst)
    if openai_client.ai_configured():
        # Queued first: the quiet period runs while the (slow) extraction call does.
        reply_queue(message)
        extraction.details_extract(message=message, config=active.config, fields=fields)
    else:
        # Instant without a model; done first so the reply already knows what was just said.
        extraction.details_extract(message=message, config=active.config, fields=fields)
        reply_queue(message)
    return "queued"


def _answer_now(*, message: Message, active: ActiveConfig, fields: list[str], burst: list[Message] | None) -> str:
    """The reply without a second Celery task (REPLY_DEBOUNCE_SECONDS = 0): the extraction
    runs on a thread of its own, started before the reply's model call, so the two calls
    overlap; each keeps its own failures (the thread logs and swallows anything, the reply
    never waits for it — it is joined only after the reply is sent)."""
    if not openai_client.ai_configured():
        # Instant without a model; done first so the reply already knows what was just said.
        extraction.details_extract(message=message, config=active.config, fields=fields)
        return burst_answer(message_id=message.pk, message=message, burst=burst)
    beside = _Beside(message_id=message.pk)
    beside.future = _extraction_threads().submit(
        _extract_beside, message=message, config=active.config, fields=fields,
        usage_out=beside.usage if fastpath.enabled() else None,
    )  # fmt: skip
    try:
        return burst_answer(message_id=message.pk, message=message, burst=burst, beside=beside)
    finally:
        # Not waiting on a pooled connection: the extraction thread may need one to finish.
        if not connection.in_atomic_block:
            connection.close()
        beside.future.result()
        if beside.usage and not beside.stored:  # the reply's commit did not take it
            fastpath.message_usage_set(message_id=message.pk, **beside.usage)


@dataclass
class _Beside:
    """The extraction running beside the reply. Its usage is stored with the reply's commit
    when the extraction has finished by then (one statement less), else once it finishes."""

    message_id: int
    future: Future | None = None
    usage: dict = field(default_factory=dict)
    stored: bool = False

    def usage_to_store(self) -> tuple[int, dict] | None:
        if self.stored or self.future is None or not self.future.done() or not self.usage:
            return None
        return self.message_id, self.usage


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _extraction_threads() -> ThreadPoolExecutor:
    """Threads kept for the extractions (a new thread per text would also build a new
    database wrapper each time). Sized to never make an extraction wait for a thread."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=EXTRACTION_THREADS, thread_name_prefix="extract")
    return _executor


EXTRACTION_THREADS = 1024


def _extract_beside(*, message: Message, config, fields: list[str], usage_out: dict | None) -> None:
    try:
        extraction.details_extract(message=message, config=config, fields=fields, usage_out=usage_out)
    except Exception:
        logger.exception("message %s: extraction failed", message.pk)
    finally:
        connections.close_all()  # this thread's connection goes back to the pool


def reply_queue(message: Message) -> None:
    from ..tasks import agent_reply

    # Not on commit: the pipeline runs in autocommit. If the broker is down the message
    # stays unhandled and the sweeper handles it again once its lease has run out.
    # No countdown at all when there is no quiet period: an ETA task waits for the worker's
    # timer, which adds up to a second.
    delay = settings.REPLY_DEBOUNCE_SECONDS
    enqueue(agent_reply, [message.pk], **({"countdown": delay} if delay > 0 else {}))


@dataclass
class Reply:
    text: str
    usage: Usage | None = None
    handoff_reason: str = ""
    extra: dict = field(default_factory=dict)


def burst_answer(
    *, message_id: int, message: Message | None = None, burst: list[Message] | None = None, beside: _Beside | None = None
) -> str:
    """The debounced reply to the burst of texts that ends with `message_id`. `message`
    (just claimed, with its conversation, channel and profile loaded) saves reading it again,
    and so does `burst` (the conversation's unanswered texts by id, read with it)."""
    if message is None:
        message = Message.objects.select_related("conversation__channel", "conversation__profile").filter(pk=message_id).first()
        burst = None
    if message is None or message.handled_at:
        return "done"  # answered, or deleted with its conversation while the reply waited
    conversation = message.conversation
    if burst is None:
        burst = list(
            Message.objects.filter(conversation=conversation, direction=Direction.INBOUND, type__in=TEXT_TYPES, handled_at__isnull=True)
            .only("id", "conversation_id", "type", "text")
            .order_by("pk")
        )
    not_ours = burst_not_ours(message=message, burst=burst)
    if not_ours:
        return not_ours
    active = bot_config_for_channel(channel=conversation.channel)
    if conversation.owner == Owner.HUMAN:
        return "human" if _burst_mark_handled(burst) else "skipped"
    reply = handoff_asked(burst)
    if reply is None:
        try:
            reply = reply_generate(conversation=conversation, burst=burst, active=active)
        except AIError as exc:
            return ai_unavailable(conversation=conversation, burst=burst, active=active, error=exc)
    return burst_commit(conversation=conversation, burst=burst, active=active, reply=reply, beside=beside)


def burst_not_ours(*, message: Message, burst: list[Message]) -> str:
    """"superseded" or "done" when `message`'s task is not the one to answer the burst (a
    newer message's task answers all of it, or another run just did); "" when it is."""
    if burst and burst[-1].pk == message.pk:
        return ""
    return "superseded" if burst and burst[-1].pk > message.pk else "done"


def handoff_asked(burst: list[Message]) -> Reply | None:
    """The hand-off reply when the customer asked for a person (no model call), else None."""
    if any(human_requested(m.text) for m in burst):
        return Reply(text="", handoff_reason="The customer asked for a person.")
    return None


def _newer_unhandled_text(*, conversation_id: int, after_id: int):
    return Message.objects.filter(
        conversation_id=conversation_id, direction=Direction.INBOUND, type__in=TEXT_TYPES, handled_at__isnull=True, pk__gt=after_id
    )


def _burst_mark_handled(burst: list[Message], *, unless_newer: bool = False, **error) -> bool:
    """Mark every message of the burst handled, all or nothing (inside the caller's
    transaction when there is one): False when another run got to any of them first, or
    (`unless_newer`) when a newer customer text is waiting. One UPDATE either way."""
    if not burst:
        return False
    with transaction.atomic(savepoint=False):
        if _burst_update(burst, unless_newer=unless_newer, **error) != len(burst):
            transaction.set_rollback(True)
            return False
    return True


_MESSAGE_TABLE = Message._meta.db_table
# The same UPDATE as the ORM's below, written once: building it costs more CPU than running it.
_BURST_UPDATE_SQL = f"""
UPDATE {_MESSAGE_TABLE} SET handled_at = %s, locked_until = NULL
WHERE id = ANY(%s) AND handled_at IS NULL AND NOT EXISTS (
    SELECT 1 FROM {_MESSAGE_TABLE} newer
    WHERE newer.conversation_id = %s AND newer.direction = %s AND newer.type = ANY(%s)
      AND newer.handled_at IS NULL AND newer.id > %s)"""


def _burst_update(burst: list[Message], *, unless_newer: bool, **error) -> int:
    conn = transaction.get_connection()
    if unless_newer and not error and conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(
                _BURST_UPDATE_SQL,
                [timezone.now(), [m.pk for m in burst], burst[-1].conversation_id, Direction.INBOUND, list(TEXT_TYPES), burst[-1].pk],
            )
            return cursor.rowcount
    marked = Message.objects.filter(pk__in=[m.pk for m in burst], handled_at__isnull=True)
    if unless_newer:
        marked = marked.filter(~Exists(_newer_unhandled_text(conversation_id=burst[-1].conversation_id, after_id=burst[-1].pk)))
    return marked.update(handled_at=timezone.now(), locked_until=None, **error)


def burst_commit(
    *, conversation: Conversation, burst: list[Message], active: ActiveConfig, reply: Reply, check_newer: bool = True,
    error: dict | None = None, beside: _Beside | None = None,
) -> str:
    """Send the reply (or hand over) and mark the burst handled, in one transaction.

    The common case (a reply in a bot-owned conversation) is four statements: the
    conversation row is locked by the UPDATE that bumps it for the reply, the burst is
    marked handled by an UPDATE that also checks nothing newer is waiting, the reply is
    inserted already claimed for its delivery (which this thread does after the commit)."""
    now = timezone.now()
    # Outside any caller's transaction the reply is delivered by this thread once committed
    # (one task less per reply); inside one, its delivery is queued on commit as usual.
    inline = not transaction.get_connection().in_atomic_block
    if not reply.handoff_reason and check_newer and not error and fastpath.enabled():
        # The common case, a reply in a bot-owned conversation, as prepared SQL (same rules).
        sent = reply_row(conversation=conversation, active=active, reply=reply, claimed=inline, now=now)
        usage = beside.usage_to_store() if beside else None
        outcome = fastpath.reply_commit(
            conversation=conversation, burst=burst, reply=sent, preview=message_preview(type=MessageType.TEXT, text=reply.text),
            usage=usage,
        )  # fmt: skip
        if outcome == "sent":
            if usage:
                beside.stored = True
            if inline:
                message_deliver_now(message=sent, claimed=True)
            else:
                message_delivery_queue(message=sent)
        if outcome is not None:
            return outcome
        # Not the bot's conversation any more: the ORM path below says what happens.
    sent = None
    with transaction.atomic():
        # The webhook updates this row in the transaction that stores a new message: once we
        # hold the lock, any message stored before now is visible to the statements below.
        owner = None
        if not reply.handoff_reason:
            bumped = Conversation.objects.filter(pk=conversation.pk, owner=Owner.BOT).update(
                last_message_at=now, last_message_preview=message_preview(type=MessageType.TEXT, text=reply.text),
                revision=F("revision") + 1, changed_at=now,
            )  # fmt: skip
            owner = Owner.BOT if bumped else None
        if owner is None:
            owner = Conversation.objects.select_for_update().only("id", "owner").get(pk=conversation.pk).owner
        if _burst_update(burst, unless_newer=check_newer, **(error or {})) != len(burst):
            # Which of the two reasons, for the caller; then all of it (the bump too) rolls back.
            stale = check_newer and _newer_unhandled_text(conversation_id=conversation.pk, after_id=burst[-1].pk).exists()
            transaction.set_rollback(True)
            return "stale" if stale else "skipped"
        bump = True
        if reply.handoff_reason:
            moved = Conversation.objects.filter(pk=conversation.pk, owner=Owner.BOT).update(
                owner=Owner.HUMAN, handoff_reason=reply.handoff_reason[:255], handoff_at=now,
                revision=F("revision") + 1, changed_at=now,
            )  # fmt: skip
            if not moved:
                return "handled"  # already with a person: the customer was told once
            conversation.owner = Owner.HUMAN
            text = reply.text or active.config.handoff_message or DEFAULT_HANDOFF_MESSAGE
            outcome = "handoff"
        elif owner == Owner.HUMAN:
            return "human"  # a staff member took over while the model was thinking
        else:
            text, outcome, bump = reply.text, "sent", False  # bumped above
        sent = message_send_text(
            conversation=conversation, text=text, author=Author.BOT, bot_config_version=active.version,
            queue_delivery=not inline, claim_for_delivery=inline, bump_conversation=bump, now=now,
            **_usage_fields(reply.usage),
        )  # fmt: skip
    if inline and sent is not None:
        message_deliver_now(message=sent, claimed=True)
    return outcome


def reply_row(*, conversation: Conversation, active: ActiveConfig, reply: Reply, claimed: bool, now) -> Message:
    """The bot's reply as an unsaved outbound row (`claimed`: stored already claimed for
    its delivery by the caller, right after the commit)."""
    return message_outbound_build(
        conversation=conversation, type=MessageType.TEXT, text=reply.text, author=Author.BOT,
        bot_config_version=active.version, claim_for_delivery=claimed, now=now, **_usage_fields(reply.usage),
    )  # fmt: skip


def _usage_fields(usage: Usage | None) -> dict:
    if usage is None:
        return {}
    return {
        "ai_model": usage.model[:64],
        "input_tokens": usage.input_tokens,
        "cached_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": cost_estimate(
            model=usage.model, input_tokens=usage.input_tokens, cached_tokens=usage.cached_tokens, output_tokens=usage.output_tokens
        ),
    }


def ai_unavailable(*, conversation: Conversation, burst: list[Message], active: ActiveConfig, error: AIError) -> str:
    """OpenAI failed for good: the holding message once, the human queue, the error shown
    on the customer's messages (which stay stored, answerable by a person)."""
    logger.warning("conversation %s: AI unavailable, handing over: %s", conversation.pk, error)
    reply = Reply(
        text=active.config.holding_message or DEFAULT_HOLDING_MESSAGE,
        handoff_reason=f"AI unavailable: {error}"[:255],
    )
    fields = {
        "error_code": f"openai_{error.http_status or 'error'}"[:32],
        "error_title": "The AI could not answer: the conversation went to the human queue."[:255],
        "error_detail": f"{error} (after {error.attempts} attempt(s))",
    }
    outcome = burst_commit(conversation=conversation, burst=burst, active=active, reply=reply, error=fields)
    return "holding" if outcome == "handoff" else outcome


# --- generating the reply ------------------------------------------------------------------


def reply_generate(*, conversation: Conversation, burst: list[Message], active: ActiveConfig) -> Reply:
    """The agent's answer to the burst (no database writes but the OpenAI conversation id)."""
    config = active.config
    if not openai_client.ai_configured():
        missing = profile_missing_fields(profile=conversation.profile, fields=bot_config_fields(config=config))
        return _offline_reply(conversation=conversation, burst=burst, active=active, missing=missing)

    openai_conversation = openai_conversation_for(conversation=conversation, burst=burst, active=active)
    response = openai_client.response_create(
        **reply_request(conversation=conversation, burst=burst, active=active, openai_conversation=openai_conversation)
    )
    reply, calls = reply_read(response)
    for call_id in calls:
        tool_call_answer(openai_conversation=openai_conversation, call_id=call_id)
    return reply


def reply_request(*, conversation: Conversation, burst: list[Message], active: ActiveConfig, openai_conversation: str) -> dict:
    """The `responses.create` call's arguments for the reply to the burst."""
    config = active.config
    # The profile as read with the burst's message, an instant ago: the extraction of the
    # newest text runs concurrently, so the instructions say it may hold a missing detail.
    profile = conversation.profile
    fields = bot_config_fields(config=config)
    known = profile_known_fields(profile=profile, fields=fields)
    missing = profile_missing_fields(profile=profile, fields=fields)
    context = fields_context(known=known, missing=missing, extra_fields=config.extra_fields)
    request: dict = {
        "model": config.model or settings.OPENAI_MODEL,
        "conversation": openai_conversation,
        "input": [{"role": "user", "content": m.text} for m in burst],
        "tools": reply_tools(vector_store_ids=config.vector_store_ids or []),
    }
    if config.prompt_id:
        prompt: dict = {
            "id": config.prompt_id,
            "variables": {**{k: str(v) for k, v in (config.prompt_variables or {}).items()}, **context, "summary": conversation.summary},
        }
        if config.prompt_version:
            prompt["version"] = config.prompt_version
        request["prompt"] = prompt
    else:
        request["instructions"] = instructions_with_context(instructions=config.instructions, context=context, summary=conversation.summary)
    if config.temperature is not None:
        request["temperature"] = config.temperature
    if config.max_output_tokens:
        request["max_output_tokens"] = config.max_output_tokens
    return request


def reply_read(response: openai_client.Answer) -> tuple[Reply, list[str]]:
    """The reply in the model's answer, and the ids of its `handoff_to_human` calls (each
    needs its output added to the OpenAI conversation: `tool_call_answer`)."""
    handoff_reason, calls = "", []
    for item in response.output:
        if item.get("type") == "function_call" and item.get("name") == "handoff_to_human":
            try:
                handoff_reason = str(json.loads(item.get("arguments") or "{}").get("reason") or "")
            except (ValueError, AttributeError):
                handoff_reason = ""
            handoff_reason = f"The AI handed over: {handoff_reason or 'no reason given'}"
            calls.append(str(item.get("call_id") or ""))
    text = (response.output_text or "").strip()
    if not text and not handoff_reason:
        raise AIError("OpenAI answered with no text.", permanent=True)
    # On a handoff the configured message speaks, whatever else the model wrote.
    return Reply(text="" if handoff_reason else text, usage=response.usage, handoff_reason=handoff_reason), calls


def tool_call_answer(*, openai_conversation: str, call_id: str) -> None:
    # The OpenAI conversation now ends in a function call: without its output, the next
    # turn (when the conversation comes back to the bot) would be refused.
    try:
        openai_client.conversation_items_add(
            conversation_id=openai_conversation,
            items=[{"type": "function_call_output", "call_id": call_id, "output": "Handed over to a human colleague."}],
        )
    except AIError as exc:
        logger.warning("could not record the hand-off's tool output in %s: %s", openai_conversation, exc)


def _offline_reply(*, conversation: Conversation, burst: list[Message], active: ActiveConfig, missing: list[str]) -> Reply:
    profile = conversation.profile
    burst_ids = {m.pk for m in burst}
    learned = any((p or {}).get("message_id") in burst_ids for p in profile.provenance.values())
    first_reply = not Message.objects.filter(conversation=conversation, author=Author.BOT).exists()
    language = profile.language or offline.language_detect(" ".join(m.text for m in burst)) or "it"
    text = offline.reply_compose(
        language=language, first_reply=first_reply, first_name=profile.first_name, learned=learned,
        missing=missing, extra_fields=active.config.extra_fields,
    )  # fmt: skip
    return Reply(text=text, usage=Usage(model="offline"))


def openai_conversation_current(*, conversation: Conversation) -> str:
    """The stored OpenAI conversation when it is surely still the one to answer in (it
    started within the rotation window, so the thread cannot have been idle that long),
    else "" (`openai_conversation_for` decides, reading the database)."""
    started = conversation.openai_conversation_started_at
    window = timezone.timedelta(hours=settings.CONVERSATION_ROTATE_HOURS)
    if conversation.openai_conversation_id and started and timezone.now() - started < window:
        return conversation.openai_conversation_id
    return ""


def openai_conversation_for(*, conversation: Conversation, burst: list[Message], active: ActiveConfig) -> str:
    """The OpenAI conversation to answer in: the stored one, or a new one when there is
    none yet or the thread was idle for CONVERSATION_ROTATE_HOURS (then seeded with a short
    summary of the previous one, kept on the conversation)."""
    current = openai_conversation_current(conversation=conversation)
    if current:
        return current
    current = conversation.openai_conversation_id
    window = timezone.timedelta(hours=settings.CONVERSATION_ROTATE_HOURS)
    previous_at = (
        Message.objects.filter(conversation=conversation, pk__lt=burst[0].pk).order_by("-pk").values_list("created_at", flat=True).first()
    )
    idle = bool(previous_at and timezone.now() - previous_at > window)
    if current and not idle:
        return current
    summary = conversation.summary
    if current and idle:
        summary = conversation_summarize(conversation=conversation, before_id=burst[0].pk, active=active)
    items = (
        [{"type": "message", "role": "developer", "content": f"Riassunto della conversazione precedente con questo cliente: {summary}"}]
        if summary
        else []
    )
    new_id = openai_client.conversation_create(items=items, metadata={"whatsbot_conversation_id": str(conversation.pk)})
    now = timezone.now()
    # Conditional: two runs racing to create one keep a single winner.
    if not Conversation.objects.filter(pk=conversation.pk, openai_conversation_id=current).update(
        openai_conversation_id=new_id, openai_conversation_started_at=now, summary=summary
    ):
        return Conversation.objects.values_list("openai_conversation_id", flat=True).get(pk=conversation.pk) or new_id
    conversation.openai_conversation_id, conversation.openai_conversation_started_at, conversation.summary = new_id, now, summary
    return new_id


def conversation_summarize(*, conversation: Conversation, before_id: int, active: ActiveConfig) -> str:
    """A short summary of the thread so far (the model's, or a plain one if it fails)."""
    rows = list(
        Message.objects.filter(conversation=conversation, pk__lt=before_id).exclude(text="").order_by("-pk").values("author", "text")[:40]
    )
    lines = [f"{'Cliente' if r['author'] == Author.CUSTOMER else 'Assistenza'}: {r['text'][:500]}" for r in reversed(rows)]
    fields = bot_config_fields(config=active.config)
    known = profile_known_fields(profile=conversation.profile, fields=fields)
    if conversation.summary:
        lines.insert(0, f"(Riassunto precedente: {conversation.summary})")
    try:
        response = openai_client.response_create(
            model=active.config.model or settings.OPENAI_MODEL,
            instructions=SUMMARY_INSTRUCTIONS,
            input=[{"role": "user", "content": "\n".join(lines) or "(nessun messaggio)"}],
            store=False,
        )
        summary = (response.output_text or "").strip()
    except AIError as exc:
        logger.info("conversation %s: summary by the model failed, using a plain one: %s", conversation.pk, exc)
        summary = ""
    return summary or offline.summary_compose(lines=lines, known=known)
