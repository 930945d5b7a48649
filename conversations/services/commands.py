"""A customer's slash command answered: /reset forgets the OpenAI conversation, /history
lists the latest messages, /info what the profile holds (texts: `agent.commands`)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from profiles.services import profile_known_fields

from ..agent.commands import command_language, history_text, info_text, reset_text
from ..models import Conversation
from .memory import latest_texts


def command_answer(*, conversation: Conversation, command: str, alias: str, fields: list[str], extra_fields: list[dict], before_id: int) -> str:
    profile = conversation.profile
    language = command_language(profile_language=profile.language, alias=alias)
    if command == "reset":
        # The next message starts a new OpenAI conversation, told nothing of what came before;
        # the history stays in the database.
        Conversation.objects.filter(pk=conversation.pk).update(
            openai_conversation_id="", openai_conversation_started_at=None, summary="", openai_synced_message_id=before_id,
            revision=F("revision") + 1, changed_at=timezone.now(),
        )  # fmt: skip
        conversation.openai_conversation_id, conversation.openai_conversation_started_at, conversation.summary = "", None, ""
        conversation.openai_synced_message_id = before_id
        return reset_text(language)
    if command == "history":
        rows = latest_texts(conversation_id=conversation.pk, before_id=before_id, limit=settings.AGENT_HISTORY_MESSAGES)
        return history_text(language, [(from_customer, timezone.localtime(at), text) for from_customer, at, text in rows])
    known = profile_known_fields(profile=profile, fields=fields)
    if "order_number" in known:
        known["order_number"] = ", ".join(profile.order_numbers)
    return info_text(language, phone=profile.wa_id, username=profile.at_username, known=known, extra_fields=extra_fields)
