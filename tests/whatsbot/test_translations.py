"""The Italian catalogue is complete: every string the code marks for translation is in it,
translated, not fuzzy, and the compiled catalogue Django reads says the same."""

import gettext
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from conversations.texts import RETRYING, stored_text_translate
from tests.pofile import po_read

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "it" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
# Folders whose strings are not the product's (makemessages already skips hidden ones: .venv, .git).
NOT_THE_PRODUCT = ["tests", "bench", "var", "artifacts", "node_modules"]


def _key(entry) -> tuple:
    return (entry.msgctxt, entry.msgid, entry.msgid_plural)


def test_every_italian_entry_is_translated_and_none_is_fuzzy():
    entries = [e for e in po_read(PO) if not e.obsolete]
    assert len(entries) > 500
    untranslated = [e.msgid for e in entries if not e.translated]
    fuzzy = [e.msgid for e in entries if e.fuzzy]
    assert untranslated == [], f"untranslated in {PO.name}: {untranslated}"
    assert fuzzy == [], f"fuzzy in {PO.name} (check the translation, then remove the flag): {fuzzy}"


def test_the_compiled_catalogue_says_what_the_po_says():
    """django.mo is what Django reads: compiled from this .po, not from an older one
    (`msgfmt --check -o locale/it/LC_MESSAGES/django.mo locale/it/LC_MESSAGES/django.po`)."""
    with MO.open("rb") as file:
        compiled = gettext.GNUTranslations(file)._catalog  # noqa: SLF001  (the stdlib's parsed catalogue)
    expected = {}
    for entry in po_read(PO):
        if entry.obsolete or entry.fuzzy or not entry.translated:
            continue
        msgid = entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        if entry.msgid_plural:
            expected.update({(msgid, n): text for n, text in enumerate(entry.msgstr)})
        else:
            expected[msgid] = entry.msgstr[0]
    compiled = {k: v for k, v in compiled.items() if k != ""}  # "": the header
    missing = sorted(str(k) for k in expected.keys() - compiled.keys())
    stale = sorted(str(k) for k in compiled.keys() - expected.keys())
    changed = sorted(str(k) for k in expected.keys() & compiled.keys() if expected[k] != compiled[k])
    assert (missing, stale, changed) == ([], [], []), "django.mo is older than django.po: compile it again"


def test_every_string_marked_in_the_code_is_in_the_catalogue(tmp_path, monkeypatch):
    """makemessages run afresh on a copy of the code (it writes into the locale folder its
    files sit under): a string marked for translation and missing from the catalogue fails
    here (add it, translated, to django.po)."""
    source = tmp_path / "source"
    for folder in ROOT.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in [*NOT_THE_PRODUCT, "locale"]:
            shutil.copytree(folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    (source / "locale").mkdir()
    monkeypatch.chdir(source)
    with override_settings(LOCALE_PATHS=[source / "locale"]):
        call_command("makemessages", locale=["it"], no_obsolete=True, verbosity=0)
    fresh = {_key(e) for e in po_read(source / "locale" / "it" / "LC_MESSAGES" / "django.po")}
    known = {_key(e) for e in po_read(PO) if not e.obsolete}
    assert len(fresh) > 500
    assert sorted(map(str, fresh - known)) == []


def test_the_catalogue_check_fails_on_a_fuzzy_or_untranslated_entry(tmp_path):
    """The checks above can fail: a fuzzy and an empty translation are seen."""
    po = tmp_path / "django.po"
    shutil.copy(PO, po)
    po.write_text(
        po.read_text(encoding="utf-8")
        + '\n#, fuzzy\nmsgid "A new string"\nmsgstr "Una stringa"\n\nmsgid "Another new string"\nmsgstr ""\n',
        encoding="utf-8",
    )
    entries = {e.msgid: e for e in po_read(po)}
    assert entries["A new string"].fuzzy and not entries["Another new string"].translated
    assert entries["The customer asked for a person."].translated and not entries["The customer asked for a person."].fuzzy


@pytest.mark.parametrize(
    "stored, italian",
    [
        ("The customer asked for a person.", "Il cliente ha chiesto di parlare con una persona."),
        ("The AI handed over: Reclamo per un rimborso", "L'IA ha passato la conversazione: Reclamo per un rimborso"),
        (f"{RETRYING}: The media could not be downloaded.", "Nuovo tentativo: Non è stato possibile scaricare il file."),
        (
            "More than 24 hours since the customer's last message: only a template can be sent.",
            "Sono passate più di 24 ore dall'ultimo messaggio del cliente: si può inviare solo un modello.",
        ),
        ("Not delivered, attempts made: 3", "Non consegnato, tentativi fatti: 3"),
        ("(#131000) Something Meta said: in English", "(#131000) Something Meta said: in English"),  # not ours: as stored
        ("", ""),
    ],
)
def test_a_stored_reason_is_shown_in_the_readers_language(stored, italian):
    with translation.override("it"):
        assert stored_text_translate(stored) == italian
    with translation.override("en"):
        assert stored_text_translate(stored) == stored
