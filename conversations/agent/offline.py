"""The agent with no OpenAI account: rules and templates, Italian first, English when the
customer writes English. It greets, picks emails, order numbers and "mi chiamo … / my name
is …" out of the text (and, as a guess, "sono Giulia"), asks for the next missing field,
and never asks twice."""

from __future__ import annotations

import re

from profiles.models import Confidence, ExtractedValue

from .prompts import field_label

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# "ordine 12345", "order #AB-2024-17", "n. ordine: 5567": the number must contain a digit.
_ORDER = re.compile(
    r"\b(?:ordine|order|ord\.?|pedido)\s*(?:n(?:umero|umber|o)?\.?\s*|#\s*|nr\.?\s*|:\s*)*"
    r"(?P<number>[A-Za-z0-9][A-Za-z0-9\-_/#.]*\d[A-Za-z0-9\-_/#]*)",
    re.IGNORECASE,
)
# A name word: letters, with apostrophes and hyphens inside (D'Angelo, O’Brien, Anne-Marie).
_WORD = r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*"
_TOKEN = re.compile(rf"{_WORD}|\S")
_IS_WORD = re.compile(_WORD)
# Said outright: whatever follows is meant as the name.
_NAME_STATED = re.compile(
    r"\b(?:mi\s+chiamo|il\s+mio\s+nome\s+(?:è|e'|e)|my\s+name\s+is|my\s+name['’]s)\s+(?P<rest>.+)", re.IGNORECASE | re.DOTALL
)
# "sono …" / "I am …" is a name only at the start of the text or of a clause (after a
# greeting at most), and only when capitalised: "quali sono i vostri orari?", "sono le 5",
# "sono in ritardo", "I am looking for my order" are sentences, not introductions.
_NAME_GUESSED = re.compile(
    r"(?:^|(?<=[.!?,;:\n]))\s*"
    r"(?:(?:ciao|salve|buongiorno|buonasera|hi|hello|hey|good\s+(?:morning|afternoon|evening))\b[\s,!.]*)?"
    r"(?:io\s+sono|sono|i\s+am|i['’]m)\s+(?P<rest>.+)",
    re.IGNORECASE | re.DOTALL,
)
# At most this many words besides the particles: "Gian Luca De Santis".
_NAME_MAX_WORDS = 3
# Inside a name they are part of the surname (De Luca, van Beethoven); lower-case Italian
# ones are prepositions ("Marco di Acme", "Giulia dalla Sicilia") unless capitalised.
_PARTICLES = {
    "de", "di", "da", "del", "della", "dei", "degli", "dal", "dalla", "la", "le", "lo",
    "van", "von", "der", "den", "du", "dos", "das",
}
_LOWER_PARTICLES = {"de", "van", "von", "der", "den", "du", "dos", "das"}
# Elided words before an apostrophe that start an ordinary word, not a name (l'ordine, un'altra).
_ELIDED = {"l", "un", "dell", "all", "nell", "sull", "dall", "quest", "quell", "c", "m", "t", "s", "v", "n"}
# Words that end a name or show there is none: function words, verbs and adjectives that
# follow "sono" / "I am" / "mi chiamo" in ordinary sentences.
_NOT_NAMES = {
    # Italian
    "a", "ad", "ai", "al", "alla", "alle", "allo", "agli", "anche", "ancora", "appena", "arrabbiato", "arrabbiata",
    "arrivato", "arrivata", "avete", "avrei", "abbiamo", "bene", "buonasera", "buongiorno", "cerco", "cercavo", "che",
    "chi", "chiedo", "chiedevo", "ci", "ciao", "cliente", "come", "con", "contento", "contenta", "corretto", "cosa",
    "d'accordo", "da", "devo", "di", "dispiaciuto", "dispiaciuta", "disponibile", "diverso", "dove", "dovrei", "e", "ed",
    "era", "errato", "felice", "già", "gia", "gli", "grazie", "giusto", "ha", "hai", "ho", "i", "il", "in", "interessato",
    "interessata", "io", "la", "le", "lei", "lo", "loro", "lui", "ma", "mai", "male", "mi", "mia", "mie", "miei", "mio",
    "molto", "no", "noi", "non", "nostra", "nostro", "nuovo", "nuova", "o", "ok", "okay", "per", "perché", "perche",
    "però", "pero", "posso", "potete", "potrei", "preoccupato", "preoccupata", "pronto", "pronta", "qua", "quale",
    "quali", "quando", "quanto", "quella", "quello", "questa", "questo", "qui", "salve", "sbagliato", "sbagliata",
    "scritto", "scrivo", "scrivevo", "sempre", "sei", "si", "sì", "sicuro", "sicura", "solo", "sono", "spiacente",
    "stanco", "stanca", "stata", "stato", "stati", "sto", "stavo", "su", "sua", "suo", "ti", "tornato", "tornata",
    "troppo", "tu", "tua", "tuo", "un", "una", "uno", "vi", "voglio", "voi", "volevo", "vorrei", "vorremmo", "vostra",
    "vostre", "vostri", "vostro", "è", "e'",
    # English
    "about", "afraid", "also", "am", "american", "an", "and", "angry", "are", "at", "available", "back", "be", "been",
    "british", "but", "by", "calling", "can", "client", "confused", "contacting", "correct", "could", "currently",
    "customer", "disappointed", "do", "english", "fine", "for", "french", "from", "german", "glad", "going", "good",
    "happy", "have", "having", "hello", "here", "hey", "hi", "hope", "interested", "is", "it", "italian", "just",
    "late", "looking", "me", "misspelled", "my", "need", "new", "not", "of", "on", "or", "our", "please", "ready",
    "really", "so", "sorry", "spanish", "still", "sure", "thank", "thanks", "the", "there", "this", "that", "to",
    "trying", "unable", "upset", "very", "waiting", "want", "wanted", "was", "we", "well", "with", "would", "writing",
    "wrong", "yes", "you", "your",
}
_COMPANY_STATED = re.compile(
    r"\b(?:lavoro\s+(?:per|presso)|la\s+mia\s+azienda\s+(?:è|e'|e|si\s+chiama)|i\s+work\s+(?:for|at)|my\s+company\s+is|"
    r"from\s+the\s+company)\s+(?P<company>[^\n,.;!?]{2,60})",
    re.IGNORECASE,
)
# Weaker: "azienda" is also in "la vostra azienda è chiusa?"; taken only before a capital.
_COMPANY_GUESSED = re.compile(
    r"\b(?:lavoro\s+in|dell['’]azienda|della\s+ditta|per\s+conto\s+di|azienda)\s+(?P<company>[^\W_][^\n,.;!?]{1,59})",
    re.IGNORECASE,
)


def _name_words(rest: str, *, capitalised: bool) -> list[str]:
    """The name at the start of `rest`, word by word ([] when there is none)."""
    words: list[str] = []
    counted = 0
    for token in _TOKEN.findall(rest):
        lower = token.lower().replace("’", "'")
        elided, apostrophe, _ = lower.partition("'")
        if not _IS_WORD.fullmatch(token) or (apostrophe and elided in _ELIDED):
            break  # punctuation, a number, "l'ordine": the name (if any) ended
        if lower in _PARTICLES:
            if not words or not (token[0].isupper() or lower in _LOWER_PARTICLES):
                break
            words.append(token)
            continue
        if lower in _NOT_NAMES or (capitalised and not token[0].isupper()) or counted == _NAME_MAX_WORDS:
            break
        words.append(token)
        counted += 1
    while words and words[-1].lower() in _PARTICLES:
        words.pop()  # "Maria De" and then no surname: the particle was a preposition
    return words


def _name_split(words: list[str]) -> tuple[str, str]:
    """First and last name: the surname is the last word with the particles before it."""
    if len(words) == 1:
        return words[0], ""
    start = len(words) - 1
    while start > 1 and words[start - 1].lower() in _PARTICLES:
        start -= 1
    return " ".join(words[:start]), " ".join(words[start:])


def _name_extract(text: str) -> tuple[str, str, Confidence] | None:
    if m := _NAME_STATED.search(text):
        if words := _name_words(m.group("rest"), capitalised=False):
            return (*_name_split(words), Confidence.STATED)
    for m in _NAME_GUESSED.finditer(text):
        if words := _name_words(m.group("rest"), capitalised=True):
            return (*_name_split(words), Confidence.GUESSED)
    return None


def _company_extract(text: str) -> ExtractedValue | None:
    if m := _COMPANY_STATED.search(text):
        return ExtractedValue(m.group("company").strip(), Confidence.STATED)
    for m in _COMPANY_GUESSED.finditer(text):
        company = m.group("company").strip()
        if company[0].isupper() or company[0].isdigit():
            return ExtractedValue(company, Confidence.GUESSED)
    return None


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


def details_extract(*, text: str) -> dict[str, ExtractedValue | str]:
    """What the rules can read in a customer's text: each field's value with how sure the
    rule is of it ("mi chiamo …", an email or order number: stated; "sono …": a guess),
    and the detected "language" as a plain code. Values are validated by the caller."""
    found: dict[str, ExtractedValue | str] = {}
    if m := _EMAIL.search(text):
        found["email"] = ExtractedValue(m.group(0), Confidence.STATED)
    if m := _ORDER.search(text):
        found["order_number"] = ExtractedValue(m.group("number").rstrip("."), Confidence.STATED)
    if name := _name_extract(text):
        first, last, confidence = name
        found["first_name"] = ExtractedValue(first, confidence)
        if last:
            found["last_name"] = ExtractedValue(last, confidence)
    if company := _company_extract(text):
        found["company"] = company
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


# Nothing missing, and a person has answered the customer since the bot last spoke (handed
# back): the customer has been helped; the bot is here again, and does not promise a colleague.
AFTER_PERSON = {
    "it": "Eccomi di nuovo: se hai altre domande, scrivi pure.",
    "en": "I'm back with you: if you have any other questions, just write.",
}


def reply_compose(
    *, language: str, first_reply: bool, first_name: str, learned: bool, missing: list[str], extra_fields: list[dict],
    after_person: bool = False,
) -> str:  # fmt: skip
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
        parts.append(AFTER_PERSON[lang] if after_person else COMPLETE[lang])
    return " ".join(parts)


def summary_compose(*, lines: list[str], known: dict[str, str]) -> str:
    """A summary without a model: what is known about the customer and the last few lines."""
    facts = "; ".join(f"{k}: {v}" for k, v in known.items())
    recent = " / ".join(line[:120] for line in lines[-6:])
    return " ".join(p for p in (f"Dati noti: {facts}." if facts else "", f"Ultimi messaggi: {recent}" if recent else "") if p)
