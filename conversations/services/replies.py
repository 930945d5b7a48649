"""The bot's answer to a customer message.

Text goes to the AI agent (`conversations.agent.service`); other types get a configurable
acknowledgement for their type. Nothing is sent while a human owns the conversation.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from ..agent.service import text_message_handle
from ..models import TEXT_TYPES, Message, MessageType, Owner
from .outbound import message_send_text

# Types that need no answer at all.
SILENT_TYPES = {MessageType.REACTION, MessageType.SYSTEM}


def inbound_reply(*, message: Message, burst: list[Message] | None = None) -> str:
    """`burst`: the conversation's unanswered texts, when read with the message."""
    if message.type in TEXT_TYPES:
        # The AI agent: a command's answer now, or extraction and a (debounced) reply.
        return text_message_handle(message=message, burst=burst)
    if message.type in SILENT_TYPES or message.conversation.owner == Owner.HUMAN:
        return _handled_without_reply(message)
    return _acknowledge(message, settings.ACK_MEDIA_REPLY.format(type=message.get_type_display().lower()))


def _acknowledge(message: Message, text: str) -> str:
    from .pipeline import inbound_mark_handled

    with transaction.atomic():
        # The reply and the "handled" mark commit together: a second run sends nothing.
        if not inbound_mark_handled(message=message):
            return "skipped"
        message_send_text(conversation=message.conversation, text=text, reply_to="")
    return "acknowledged"


def _handled_without_reply(message: Message) -> str:
    from .pipeline import inbound_mark_handled

    inbound_mark_handled(message=message)
    return "handled"
