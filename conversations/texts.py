"""Stored texts shown to staff, in the reader's language.

A reason written by a worker (a hand-off, a failed delivery, a file not kept) is stored in
English, the catalogue's msgid (marked with `gettext_noop` where it is written), and
translated when a page shows it: the staff who read it may not share a language, and the
worker has no reader's language to write in. A reason with a detail is stored as
"<msgid>: <detail>" (the detail: a number, a provider's or the model's own words, or another
such reason); the part before the colon is translated, the detail kept as written. Anything
else (an older row, Meta's own words) is shown as stored.
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_noop

SEPARATOR = ": "
# A temporary failure's reason while the next attempt is due: "Retrying: <the reason>".
RETRYING = gettext_noop("Retrying")


def stored_text_translate(text: str) -> str:
    """`text` in the active language: whole, or its leading msgid before a detail."""
    if not text:
        return ""
    translated = gettext(text)
    if translated != text:
        return translated
    # The longest leading msgid first: a msgid may itself hold ": " (Graph's REASONS do).
    end = text.rfind(SEPARATOR)
    while end > 0:
        head = text[:end]
        translated = gettext(head)
        if translated != head:
            return f"{translated}{SEPARATOR}{stored_text_translate(text[end + len(SEPARATOR):])}"
        end = text.rfind(SEPARATOR, 0, end)
    return text
