"""Slash commands a customer can send: /reset, /history, /info (and Italian aliases).

A command is answered at once, without the debounce and without the model. An unknown
`/word` is not a command: it goes to the agent as ordinary text.
"""

from __future__ import annotations

from datetime import datetime

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
        "info_empty": "Non abbiamo ancora nessun dato su di te oltre al tuo contatto WhatsApp.",
        "phone": "telefono",
        "username": "nome utente",
    },
    "en": {
        "reset": "Done: let's start over. How can I help you?",
        "history_empty": "There are no messages yet.",
        "history_head": "The latest messages:",
        "you": "You",
        "us": "Us",
        "info_head": "Here is what we hold about you:",
        "info_empty": "We hold nothing about you yet besides your WhatsApp contact.",
        "phone": "phone",
        "username": "username",
    },
}


def command_language(*, profile_language: str, alias: str) -> str:
    """The language to answer a command in: the customer's, else the alias's."""
    if profile_language in TEXTS:
        return profile_language
    return "en" if alias in ENGLISH_ALIASES else "it"


def reset_text(language: str) -> str:
    return TEXTS[language]["reset"]


def history_text(language: str, rows: list[tuple[bool, datetime, str]]) -> str:
    """The /history answer: `rows` are (from the customer, local time, text), oldest first."""
    t = TEXTS[language]
    if not rows:
        return t["history_empty"]
    lines = [t["history_head"]]
    for from_customer, at, text in rows:
        lines.append(f"[{at:%d/%m %H:%M}] {t['you'] if from_customer else t['us']}: {text[:300]}")
    return "\n".join(lines)


def info_text(language: str, *, phone: str, username: str, known: dict[str, str], extra_fields: list[dict]) -> str:
    """The /info answer: what the profile holds, field by field (the number and @username
    when Meta shared them)."""
    t = TEXTS[language]
    lines = [f"- {t['phone']}: +{phone}"] if phone else []
    lines += [f"- {t['username']}: {username}"] if username else []
    lines += [f"- {field_label(key=k, extra_fields=extra_fields, language=language)}: {v}" for k, v in known.items()]
    return "\n".join([t["info_head"] if known else t["info_empty"], *lines])
