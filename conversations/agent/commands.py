"""Slash commands a customer can send: /reset, /history, /info (and Italian aliases).

A command is answered at once, without the debounce and without the model. An unknown
`/word` is not a command: it goes to the agent as ordinary text.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from profiles.models import ClientProfile
from profiles.services import profile_known_fields

from ..models import Author, Conversation, Message
from .prompts import field_label

COMMANDS = {
    "reset": "reset",
    "ricomincia": "reset",
    "nuova": "reset",
    "history": "history",
    "storia": "history",
    "cronologia": "history",
    "info": "info",
    "dati": "info",
    "imieidati": "info",
}
# Aliases only an English speaker would type.
ENGLISH_ALIASES = {"history"}


def command_parse(text: str) -> tuple[str, str] | None:
    """("reset", alias) for "/reset", "/Ricomincia!"...; None for anything else."""
    text = text.strip()
    if not text.startswith("/"):
        return None
    word = text[1:].split(maxsplit=1)[0] if len(text) > 1 else ""
    alias = word.lower().rstrip("!.?").replace("_", "").replace("-", "")
    command = COMMANDS.get(alias)
    return (command, alias) if command else None


TEXTS = {
    "it": {
        "reset": "Fatto: ricominciamo da capo. Come posso aiutarti?",
        "history_empty": "Non ci sono ancora messaggi.",
        "history_head": "Gli ultimi messaggi:",
        "you": "Tu",
        "us": "Noi",
        "info_head": "Ecco i dati che abbiamo su di te:",
        "info_empty": "Non abbiamo ancora nessun dato su di te oltre al tuo numero.",
        "phone": "telefono",
    },
    "en": {
        "reset": "Done: let's start over. How can I help you?",
        "history_empty": "There are no messages yet.",
        "history_head": "The latest messages:",
        "you": "You",
        "us": "Us",
        "info_head": "Here is what we hold about you:",
        "info_empty": "We hold nothing about you yet besides your number.",
        "phone": "phone",
    },
}


def command_answer(*, conversation: Conversation, command: str, alias: str, fields: list[str], extra_fields: list[dict], before_id: int) -> str:
    """The text that answers the command; /reset also forgets the OpenAI conversation."""
    profile: ClientProfile = conversation.profile
    lang = profile.language if profile.language in TEXTS else ("en" if alias in ENGLISH_ALIASES else "it")
    t = TEXTS[lang]
    if command == "reset":
        # The next message creates a new OpenAI conversation; the history stays in the database.
        Conversation.objects.filter(pk=conversation.pk).update(
            openai_conversation_id="", openai_conversation_started_at=None, summary="",
            revision=F("revision") + 1, changed_at=timezone.now(),
        )  # fmt: skip
        conversation.openai_conversation_id = ""
        conversation.summary = ""
        return t["reset"]
    if command == "history":
        messages = list(
            Message.objects.filter(conversation=conversation, pk__lt=before_id)
            .exclude(text="")
            .order_by("-id")
            .values("author", "text", "created_at")[: settings.AGENT_HISTORY_MESSAGES]
        )
        if not messages:
            return t["history_empty"]
        lines = [t["history_head"]]
        for m in reversed(messages):
            who = t["you"] if m["author"] == Author.CUSTOMER else t["us"]
            at = timezone.localtime(m["created_at"]).strftime("%d/%m %H:%M")
            lines.append(f"[{at}] {who}: {m['text'][:300]}")
        return "\n".join(lines)
    known = profile_known_fields(profile=profile, fields=fields)
    if "order_number" in known:
        known["order_number"] = ", ".join(profile.order_numbers)
    lines = [f"- {t['phone']}: +{profile.wa_id}"]
    lines += [f"- {field_label(key=k, extra_fields=extra_fields, language=lang)}: {v}" for k, v in known.items()]
    return "\n".join([t["info_head"] if known else t["info_empty"], *lines])
