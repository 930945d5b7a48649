"""What the agent says to a burst of customer texts: the model's request and how its answer
is read, the offline agent's reply, the customer asking for a person, the summary that
seeds a new OpenAI conversation. Pure functions over plain values; the turn
(`conversations.turn`) does the I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext_noop

from . import offline
from .openai_client import AIError
from .prompts import (
    CUSTOMER_TEXT_MAX,
    SUMMARY_INSTRUCTIONS,
    Said,
    customer_input,
    fields_context,
    instructions_with_context,
    reply_tools,
)

# The customer asking for a person, in Italian or English.
_HUMAN_REQUEST = re.compile(
    r"\b(?:operator[ei]|operatore|operatrice|persona\s+(?:vera|reale|fisica)|essere\s+umano|un\s+umano|"
    r"parlare\s+con\s+(?:qualcuno|una\s+persona|un\s+collega|un\s+responsabile)|assistenza\s+umana|"
    r"(?:a|an|real|actual)\s+human|human\s+(?:agent|being|operator|support)|(?:real|actual|live)\s+person|"
    r"(?:customer\s+service\s+)?representative|(?:human|live|real)\s+operator|"
    r"(?:talk|speak|chat)\s+(?:to|with)\s+(?:someone|somebody|a\s+person|an?\s+agent|an?\s+operator|a\s+real))\b",
    re.IGNORECASE,
)
# Stored reasons are msgids, translated where staff read them (conversations.texts); how the
# reasons of the hand-offs begin also tells staff why (`decisions.needs_person_cause`).
HANDOFF_ASKED = gettext_noop("The customer asked for a person.")
HANDOFF_BY_AI = gettext_noop("The AI handed over")  # ": <the model's reason>"
HANDED_OVER_NO_REASON = gettext_noop("The AI handed over, giving no reason.")
HANDOFF_AI_UNAVAILABLE = gettext_noop("AI unavailable")  # ": <the error>"
# A dated snapshot ("gpt-6-luna-2026-09-22") of a model.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def model_for(config) -> str:
    """The model a bot configuration answers with: its own, else OPENAI_MODEL (a blank model
    follows the setting, so changing it in `.env` counts)."""
    return config.model or settings.OPENAI_MODEL


def human_requested(text: str) -> bool:
    return bool(_HUMAN_REQUEST.search(text))


@dataclass
class Reply:
    text: str
    usage: dict = field(default_factory=dict)  # the message's usage fields (model, tokens, cost)
    handoff_reason: str = ""
    tool_calls: list[str] = field(default_factory=list)  # handoff_to_human calls needing their output


def cost_estimate(*, model: str, input_tokens: int | None, cached_tokens: int | None, output_tokens: int | None) -> Decimal | None:
    """USD at OPENAI_PRICES; None (unknown, not free) for a model it has no price for."""
    prices = settings.OPENAI_PRICES.get(model) or settings.OPENAI_PRICES.get(_SNAPSHOT.sub("", model))
    if prices is None or input_tokens is None or output_tokens is None:
        return None
    cached = min(cached_tokens or 0, input_tokens)
    total = (input_tokens - cached) * prices["input"] + cached * prices["cached_input"] + output_tokens * prices["output"]
    return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))


def usage_fields(response) -> dict:
    """The usage columns of the message an answer produced (model, tokens, estimated cost)."""
    model = str(getattr(response, "model", "") or "")
    usage = getattr(response, "usage", None)
    if usage is None:
        return {"ai_model": model[:64]}
    details = getattr(usage, "input_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return {
        "ai_model": model[:64],
        "input_tokens": usage.input_tokens,
        "cached_tokens": cached,
        "output_tokens": usage.output_tokens,
        "cost_usd": cost_estimate(model=model, input_tokens=usage.input_tokens, cached_tokens=cached, output_tokens=usage.output_tokens),
    }


def reply_request(
    *, config, said: list[Said], known: dict[str, str], missing: list[str], summary: str, openai_conversation: str
) -> dict:
    """The `responses.create` arguments for the reply to a burst: what the customer `said` in
    each message (words, an image). `known` and `missing`: the profile's fields as read with
    the burst (the extraction of the newest text may be running at the same moment: the
    instructions say so)."""
    context = fields_context(known=known, missing=missing, extra_fields=config.extra_fields)
    request: dict = {
        "model": model_for(config),
        "conversation": openai_conversation,
        "input": customer_input(said, image_detail=settings.OPENAI_IMAGE_DETAIL),
        "tools": reply_tools(vector_store_ids=config.vector_store_ids or []),
        "instructions": instructions_with_context(instructions=config.instructions, context=context, summary=summary),
    }
    if config.temperature is not None:
        request["temperature"] = config.temperature
    if config.max_output_tokens:
        request["max_output_tokens"] = config.max_output_tokens
    return request


def reply_read(response) -> Reply:
    """The reply in the model's answer. A `handoff_to_human` call makes it a hand-off (the
    configured message speaks then, whatever else the model wrote); its call ids need their
    output added to the OpenAI conversation (`tool_output_items`)."""
    handoff_reason, calls = "", []
    for item in response.output:
        if item.type == "function_call" and item.name == "handoff_to_human":
            try:
                reason = str(json.loads(item.arguments or "{}").get("reason") or "")
            except (ValueError, AttributeError):
                reason = ""
            handoff_reason = f"{HANDOFF_BY_AI}: {reason}" if reason.strip() else HANDED_OVER_NO_REASON
            calls.append(item.call_id)
    text = (response.output_text or "").strip()
    if not text and not handoff_reason:
        raise AIError("OpenAI answered with no text.", permanent=True)
    return Reply(text="" if handoff_reason else text, usage=usage_fields(response), handoff_reason=handoff_reason, tool_calls=calls)


def tool_output_items(call_id: str) -> list[dict]:
    # The OpenAI conversation ends in a function call: without its output, the next turn
    # (when the conversation comes back to the bot) would be refused.
    return [{"type": "function_call_output", "call_id": call_id, "output": "Handed over to a human colleague."}]


# At most this many characters of a thread's missed messages go to the model before a reply
# (the oldest are left out first); each message is cut at CUSTOMER_TEXT_MAX like a customer's text.
CATCH_UP_MAX_CHARS = 12_000


def catch_up_items(rows: list) -> list[dict]:
    """What the OpenAI conversation missed (`memory.unsynced_rows`: each with `author`,
    `staff`, `origin`, `words`), oldest first, as its items: the customer's words as theirs,
    what the business wrote as the assistant's, a person's marked as such ("Operatore (Anna): …")
    so the model tells the staff's words from its own. The newest CATCH_UP_MAX_CHARS at most."""
    items: list[dict] = []
    total = 0
    for row in reversed(rows):
        words = row.words[:CUSTOMER_TEXT_MAX]
        if row.author == "customer":
            role, content = "user", words
        elif row.author == "staff":
            who = row.staff or ("WhatsApp Business app" if row.origin == "business_app" else "")
            role, content = "assistant", f"Operatore ({who}): {words}" if who else f"Operatore: {words}"
        else:
            role, content = "assistant", words
        total += len(content)
        if items and total > CATCH_UP_MAX_CHARS:
            break
        items.append({"type": "message", "role": role, "content": content})
    return items[::-1]


def offline_reply(
    *, texts: list[str], language: str, first_reply: bool, first_name: str, learned: bool, missing: list[str], extra_fields: list[dict],
    after_person: bool = False,
) -> Reply:  # fmt: skip
    """The offline agent's answer (no OpenAI account). `after_person`: a person wrote to the
    customer since the bot's last message (the conversation was handed back)."""
    language = language or offline.language_detect(" ".join(texts)) or "it"
    text = offline.reply_compose(
        language=language, first_reply=first_reply, first_name=first_name, learned=learned, missing=missing, extra_fields=extra_fields,
        after_person=after_person,
    )  # fmt: skip
    return Reply(text=text, usage={"ai_model": "offline"})


def conversation_seed(summary: str) -> list[dict]:
    """The first items of a new OpenAI conversation: the summary of the previous one."""
    if not summary:
        return []
    return [{"type": "message", "role": "developer", "content": f"Riassunto della conversazione precedente con questo cliente: {summary}"}]


def summary_lines(*, rows: list[tuple[bool, str]], previous_summary: str) -> list[str]:
    """The thread so far as lines for a summary: `rows` are (from the customer, text), oldest first."""
    lines = [f"{'Cliente' if from_customer else 'Assistenza'}: {text[:500]}" for from_customer, text in rows]
    if previous_summary:
        lines.insert(0, f"(Riassunto precedente: {previous_summary})")
    return lines


def summary_request(*, config, lines: list[str]) -> dict:
    """The `responses.create` arguments for a short summary of the thread so far."""
    return {
        "model": model_for(config),
        "instructions": SUMMARY_INSTRUCTIONS,
        "input": [{"role": "user", "content": "\n".join(lines) or "(nessun messaggio)"}],
        "store": False,
    }


def summary_read(response, *, lines: list[str], known: dict[str, str]) -> str:
    """The model's summary (`response`: None when the call failed), or a plain one."""
    text = (response.output_text or "").strip() if response is not None else ""
    return text or offline.summary_compose(lines=lines, known=known)
