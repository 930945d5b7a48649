"""What the agent says and tells the model: default instructions, field labels, the
per-turn context (what the profile holds, what is missing), tools."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from django.conf import settings

DEFAULT_INSTRUCTIONS = """\
Sei un agente WhatsApp incaricato dell'assistenza clienti e dell'acquisizione delle informazioni di base del contatto.

Come lavori:
- Rispondi nella lingua del cliente (italiano se non è chiaro), con messaggi brevi e cordiali adatti a WhatsApp: \
niente titoli, niente tabelle, al massimo un paio di frasi per volta.
- Al primo messaggio saluta e presentati come l'assistente dell'azienda.
- Rispondi alle domande usando solo le informazioni dell'azienda che trovi con lo strumento di ricerca nei documenti, \
quando è disponibile. Se non trovi la risposta, non inventare: dillo e proponi di passare la conversazione a un collega.
- Ad ogni turno ricevi l'elenco dei dati del cliente già noti e di quelli mancanti. Non chiedere mai un dato già noto. \
Chiedi in modo naturale un solo dato mancante per volta, il primo dell'elenco, quando è opportuno nella conversazione \
(prima rispondi alla domanda del cliente).
- Se il cliente chiede di parlare con una persona, oppure se non puoi aiutarlo (reclamo, richiesta fuori dalle tue \
competenze, cliente insoddisfatto), chiama lo strumento handoff_to_human indicando il motivo, senza scrivere altro.
- Non promettere rimborsi, sconti o tempi che non trovi nei documenti dell'azienda.
"""

FIELD_LABELS = {
    "it": {
        "first_name": "nome",
        "last_name": "cognome",
        "company": "azienda",
        "email": "email",
        "order_number": "numero d'ordine",
    },
    "en": {
        "first_name": "first name",
        "last_name": "last name",
        "company": "company",
        "email": "email",
        "order_number": "order number",
    },
}

FIELD_DESCRIPTIONS = {
    "first_name": "The customer's own first (given) name, only if they state it.",
    "last_name": "The customer's own last (family) name, only if they state it.",
    "company": "The company the customer works for or writes on behalf of.",
    "email": "The customer's email address.",
    "order_number": "An order number the customer refers to, exactly as written.",
}


def field_label(*, key: str, extra_fields: list[dict], language: str = "it") -> str:
    labels = FIELD_LABELS.get(language) or FIELD_LABELS["it"]
    if key in labels:
        return labels[key]
    for field in extra_fields:
        if field.get("key") == key:
            return field.get("label") or key
    return key.replace("_", " ")


def fields_context(*, known: dict[str, str], missing: list[str], extra_fields: list[dict]) -> dict[str, str]:
    """What the instructions tell the model every turn about the customer's fields."""
    known_text = "; ".join(f"{field_label(key=k, extra_fields=extra_fields)}: {v}" for k, v in known.items()) or "nessuno"
    missing_text = ", ".join(field_label(key=k, extra_fields=extra_fields) for k in missing) or "nessuno (profilo completo)"
    return {"known_fields": known_text, "missing_fields": missing_text, "next_missing_field": (
        field_label(key=missing[0], extra_fields=extra_fields) if missing else ""
    )}


# The longest text WhatsApp lets a message carry. A customer's text the model reads is cut
# there: a longer one (a forged delivery, a rendering of many contact cards) is no chat
# message, and sent whole it would be billed by the token, in every turn that carries it.
CUSTOMER_TEXT_MAX = 4096


@dataclass(frozen=True)
class Said:
    """One customer message as the model reads it: its words (a text, a caption, a voice
    note's transcript) and, for an image, the image as a `data:` URL (OpenAI cannot reach
    our storage)."""

    words: str
    image_url: str = ""


def image_data_url(*, content: bytes, mime_type: str) -> str:
    """An image as a `data:` URL, the way OpenAI takes an image it cannot fetch."""
    return f"data:{mime_type or 'image/jpeg'};base64,{base64.b64encode(content).decode('ascii')}"


def customer_input(said: list[str | Said], *, image_detail: str = "auto") -> list[dict]:
    """The customer's messages as the model's input, their words at most CUSTOMER_TEXT_MAX
    characters each (the stored message keeps its whole text); an image is an `input_image`
    part, with the caption after it as `input_text`."""
    items = []
    for one in said:
        one = one if isinstance(one, Said) else Said(words=one)
        words = one.words[:CUSTOMER_TEXT_MAX]
        if not one.image_url:
            items.append({"role": "user", "content": words})
            continue
        content: list[dict] = [{"type": "input_image", "image_url": one.image_url, "detail": image_detail}]
        if words.strip():
            content.append({"type": "input_text", "text": words})
        items.append({"role": "user", "content": content})
    return items


def instructions_with_context(*, instructions: str, context: dict[str, str], summary: str = "") -> str:
    parts = [instructions.strip() or DEFAULT_INSTRUCTIONS.strip(), ""]
    parts.append("Dati del cliente già noti (non chiederli di nuovo): " + context["known_fields"])
    parts.append("Dati ancora mancanti, in ordine: " + context["missing_fields"])
    parts.append(
        "Gli ultimi messaggi del cliente possono contenere proprio uno dei dati mancanti (non è ancora in "
        "questo elenco): in quel caso non chiederlo di nuovo, ringrazia e passa al successivo."
    )
    if summary:
        parts.append("Riassunto delle conversazioni precedenti: " + summary)
    return "\n".join(parts)


HANDOFF_TOOL = {
    "type": "function",
    "name": "handoff_to_human",
    "description": (
        "Pass the conversation to a human colleague: the customer asked for a person, or you cannot help "
        "(complaint, request outside your knowledge, unhappy customer)."
    ),
    "parameters": {
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why, in a few words, for the colleague."}},
        "required": ["reason"],
        "additionalProperties": False,
    },
    "strict": True,
}


def reply_tools(*, vector_store_ids: list[str]) -> list[dict]:
    tools: list[dict] = []
    if vector_store_ids:
        tools.append({"type": "file_search", "vector_store_ids": list(vector_store_ids)})
    tools.append(HANDOFF_TOOL)
    return tools


EXTRACTION_INSTRUCTIONS = """\
You extract a WhatsApp customer's own contact details from the message(s) they just sent to a business.
Return a value only when the customer clearly states it about themselves in this text; otherwise null.
Never guess, never take names of other people, never reuse the examples. Names without titles. Keep the
order number exactly as written. `language` is the ISO 639-1 code of the language the customer writes in."""

SUMMARY_INSTRUCTIONS = """\
Riassumi in italiano, in al massimo 5 frasi, la conversazione seguente tra un cliente e l'assistenza: \
chi è il cliente, cosa ha chiesto, cosa è stato risposto, cosa resta in sospeso. Solo il riassunto."""


# The bot's fixed messages, by kind and language (ISO 639-1), as built in; a bot configuration's own
# texts come first (`BotConfig.fixed_messages`, same shape). "holding": OpenAI failed for good and
# the conversation went to a person; "handoff": a person takes it from here; "away": the same
# outside business hours, `{back}` saying when a person is back; "media": the answer to media the
# bot cannot understand (a video, a document, a sticker; a voice note or an image without an AI,
# or when it failed), `{type}` naming the media type in that language.
FIXED_MESSAGES = {
    "holding": {
        "it": "Grazie per il messaggio! In questo momento il nostro assistente non è disponibile: "
        "un collega ti risponderà al più presto.",
        "en": "Thank you for your message! Our assistant is not available right now: a colleague will answer you shortly.",
    },
    "handoff": {
        "it": "Ti passo a un collega: ti risponderà qui al più presto.",
        "en": "I'm passing you to a colleague: they will answer you here shortly.",
    },
    "away": {
        "it": "Ti passo a un collega: ora siamo chiusi, ti risponderà da {back}.",
        "en": "I'm passing you to a colleague: we are closed now, they will answer you from {back}.",
    },
    "media": {
        "it": "Grazie, abbiamo ricevuto il tuo contenuto ({type}). Un operatore lo esaminerà al più presto.",
        "en": "Thank you, we have received your {type}. A colleague will look at it shortly.",
    },
}
FIXED_MESSAGE_KINDS = tuple(FIXED_MESSAGES)
FALLBACK_LANGUAGE = "en"
MEDIA_TYPE_NAMES = {
    "it": {
        "image": "immagine", "audio": "messaggio vocale", "video": "video", "document": "documento", "sticker": "sticker",
        "location": "posizione", "contacts": "contatto", "order": "ordine", "_": "contenuto",
    },
    "en": {
        "image": "image", "audio": "voice message", "video": "video", "document": "document", "sticker": "sticker",
        "location": "location", "contacts": "contact card", "order": "order", "_": "message",
    },
}  # fmt: skip


def fixed_message(kind: str, *, language: str, configured: dict | None, **values: str | dict[str, str]) -> str:
    """The fixed message `kind` ("holding", "handoff", "away", "media") for a customer speaking
    `language`: the configuration's text in that language, else the built-in one; a language
    with neither falls back to the business's (LANGUAGE_CODE), then English. `configured`:
    `BotConfig.fixed_messages`. Each `{name}` in the text is replaced by `values[name]`, a
    text or a text by language (read in the message's language, else English)."""
    own = (configured or {}).get(kind)
    own = own if isinstance(own, dict) else {}
    built_in = FIXED_MESSAGES[kind]
    for lang in (language, settings.LANGUAGE_CODE, FALLBACK_LANGUAGE):
        text = own.get(lang) if isinstance(own.get(lang), str) and own[lang].strip() else built_in.get(lang)
        if text:
            break
    for name, value in values.items():
        if isinstance(value, dict):
            value = value.get(lang) or value.get(FALLBACK_LANGUAGE) or next(iter(value.values()), "")
        # A plain replacement, not str.format: an admin's text may hold other braces.
        text = text.replace("{" + name + "}", value)
    return text


def media_acknowledgement(*, type: str, language: str, configured: dict | None) -> str:
    """The acknowledgement of a `type` message for a customer speaking `language`."""
    names = {lang: names.get(type) or names["_"] for lang, names in MEDIA_TYPE_NAMES.items()}
    return fixed_message("media", language=language, configured=configured, type=names)
