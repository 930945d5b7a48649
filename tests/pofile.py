"""A tiny reader of gettext catalogues (.po): the entries' msgids, translations and flags.
Enough for the tests that check the catalogue; no package needed for it."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)  # one, or one per plural form
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr)

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags


def po_read(path: Path) -> list[Entry]:
    """Every entry but the header, in file order."""
    entries, entry, key = [], Entry(), None

    def close():
        nonlocal entry, key
        if key is not None and (entry.msgid or entry.msgctxt is not None):
            entries.append(entry)
        entry, key = Entry(), None

    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("#~"):
            entry.obsolete = True
            line = line[2:].strip()
            if not line:
                continue
        elif line.startswith("#,"):
            if key is not None:
                close()
            entry.flags.update(f.strip() for f in line[2:].split(","))
            continue
        elif line.startswith("#"):
            if key is not None:
                close()
            continue
        if line.startswith('"'):
            _append(entry, key, ast.literal_eval(line))
            continue
        keyword, _, value = line.partition(" ")
        if keyword == "msgid" and key is not None and key != "msgctxt":
            close()
        key = keyword
        if keyword.startswith("msgstr"):
            entry.msgstr.append("")
        _append(entry, key, ast.literal_eval(value))
    close()
    return [e for e in entries if e.msgid]


def _append(entry: Entry, key: str | None, text: str) -> None:
    if key == "msgid":
        entry.msgid += text
    elif key == "msgid_plural":
        entry.msgid_plural += text
    elif key == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    elif key and key.startswith("msgstr"):
        entry.msgstr[-1] += text
