"""The agent with no OpenAI account: rules and templates, Italian first, English when the
customer writes English. It greets, picks emails, order numbers and "mi chiamo … / my name
is …" out of the text, asks for the next missing field, and never asks twice."""

from __future__ import annotations

import re

from .prompts import field_label

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# "ordine 12345", "order #AB-2024-17", "n. ordine: 5567": the number must contain a digit.
_ORDER = re.compile(
    r"\b(?:ordine|order|ord\.?|pedido)\s*(?:n(?:umero|umber|o)?\.?\s*|#\s*|nr\.?\s*|:\s*)*"
    r"(?P<number>[A-Za-z0-9][A-Za-z0-9\-_/#.]*\d[A-Za-z0-9\-_/#]*)",
    re.IGNORECASE,
)
_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ'’\-]+"
_NAME = re.compile(
    r"\b(?:mi\s+chiamo|il\s+mio\s+nome\s+(?:è|e'|e)|my\s+name\s+is|i\s+am|i'm|sono)\s+"
    rf"(?P<name>{_NAME_WORD}(?:\s+{_NAME_WORD})?)",
    re.IGNORECASE,
)
_COMPANY = re.compile(
    r"\b(?:lavoro\s+(?:per|presso|in)|dell'azienda|della\s+ditta|per\s+conto\s+di|azienda|i\s+work\s+(?:for|at)|"
    r"my\s+company\s+is|from\s+the\s+company)\s+(?P<company>[^\n,.;!?]{2,60})",
    re.IGNORECASE,
)
# Words after "sono"/"i am" that are not a name ("sono contento", "i am looking for").
_NOT_NAMES = {
    "a", "al", "alla", "di", "da", "in", "qui", "molto", "contento", "contenta", "interessato", "interessata",
    "un", "una", "il", "lo", "la", "looking", "interested", "not", "a", "an", "the", "here", "very", "from",
    "still", "just", "so", "trying", "writing", "waiting", "in", "at", "on", "sorry", "happy", "ancora",
    "stato", "stata", "appena", "già", "gia", "sempre", "tornato", "tornata", "disponibile", "cliente", "customer",
}

_ENGLISH = {
    "the", "and", "is", "are", "my", "i", "you", "hello", "hi", "thanks", "thank", "please", "what", "how", "when",
    "where", "order", "name", "want", "need", "can", "could", "would", "with", "for", "this", "that", "have", "good",
    "morning", "evening", "yes", "no", "help", "it", "do", "does", "of", "to",
}
_ITALIAN = {
    "il", "lo", "la", "e", "è", "sono", "mi", "ciao", "buongiorno", "buonasera", "grazie", "per", "favore", "cosa",
    "come", "quando", "dove", "ordine", "nome", "vorrei", "voglio", "posso", "con", "questo", "questa", "ho", "di",
    "che", "non", "un", "una", "del", "della", "salve", "sì", "si", "aiuto", "chiamo", "avete",
}


def language_detect(text: str) -> str:
    """"en" when the words look English, "it" when they look Italian, "" when unsure."""
    words = re.findall(r"[a-zàèéìòù']+", text.lower())
    en = sum(w in _ENGLISH for w in words)
    it = sum(w in _ITALIAN for w in words)
    if en > it:
        return "en"
    if it > en:
        return "it"
    return ""


def details_extract(*, text: str) -> dict[str, str]:
    """What the rules can read in a customer's text; values are validated by the caller."""
    found: dict[str, str] = {}
    if m := _EMAIL.search(text):
        found["email"] = m.group(0)
    if m := _ORDER.search(text):
        found["order_number"] = m.group("number").rstrip(".")
    if m := _NAME.search(text):
        words = [w for w in m.group("name").split()]
        if words and words[0].lower() not in _NOT_NAMES:
            if len(words) > 1 and words[1].lower() in _NOT_NAMES | {"e", "and", "ma", "but", "ho", "have"}:
                words = words[:1]
            found["first_name"] = words[0]
            if len(words) > 1:
                found["last_name"] = words[1]
    if m := _COMPANY.search(text):
        found["company"] = m.group("company").strip()
    if language := language_detect(text):
        found["language"] = language
    return found


GREETING = {
    "it": "Ciao{name}! Sono l'assistente virtuale: sono qui per aiutarti.",
    "en": "Hi{name}! I'm the virtual assistant, here to help.",
}
THANKS = {
    "it": "Grazie{name}, ho preso nota.",
    "en": "Thank you{name}, noted.",
}
ASK = {
    "it": {
        "first_name": "Come ti chiami?",
        "last_name": "Qual è il tuo cognome?",
        "company": "Per quale azienda ci scrivi?",
        "email": "Mi lasci un indirizzo email per ricontattarti?",
        "order_number": "Hai un numero d'ordine a cui fai riferimento?",
        "_": "Mi indichi il tuo {label}?",
    },
    "en": {
        "first_name": "What's your name?",
        "last_name": "What's your last name?",
        "company": "Which company are you writing for?",
        "email": "Could you leave an email address where we can reach you?",
        "order_number": "Do you have an order number you're referring to?",
        "_": "Could you tell me your {label}?",
    },
}
COMPLETE = {
    "it": "Abbiamo tutti i dati che ci servono. Scrivi pure la tua richiesta: un collega ti risponderà al più presto.",
    "en": "We have everything we need. Go ahead and write your request: a colleague will get back to you shortly.",
}


def reply_compose(
    *, language: str, first_reply: bool, first_name: str, learned: bool, missing: list[str], extra_fields: list[dict]
) -> str:
    lang = language if language in ASK else "it"
    name = f" {first_name}" if first_name else ""
    parts = []
    if first_reply:
        parts.append(GREETING[lang].format(name=name))
    elif learned:
        parts.append(THANKS[lang].format(name=name))
    if missing:
        field = missing[0]
        ask = ASK[lang].get(field) or ASK[lang]["_"].format(label=field_label(key=field, extra_fields=extra_fields, language=lang))
        parts.append(ask)
    else:
        parts.append(COMPLETE[lang])
    return " ".join(parts)


def summary_compose(*, lines: list[str], known: dict[str, str]) -> str:
    """A summary without a model: what is known about the customer and the last few lines."""
    facts = "; ".join(f"{k}: {v}" for k, v in known.items())
    recent = " / ".join(line[:120] for line in lines[-6:])
    return " ".join(p for p in (f"Dati noti: {facts}." if facts else "", f"Ultimi messaggi: {recent}" if recent else "") if p)
