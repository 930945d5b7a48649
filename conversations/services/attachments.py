"""A file staff attach to a reply: what WhatsApp takes, told from the bytes.

WhatsApp takes images as JPEG or PNG (at most 5 MB) and documents as PDF, Word, Excel,
PowerPoint or plain text (at most 100 MB); MEDIA_OUT_*_MAX_BYTES may lower both. A browser
names a file's type from its extension, so the type is read from the file's first bytes
(and, for the Office formats, the parts inside the ZIP or OLE container), never taken on the
browser's word: a renamed file is refused here, with a reason staff can act on, instead of by
Meta after the upload.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import unicodedata
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.core.files import File
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from ..models import MessageType

JPEG, PNG = "image/jpeg", "image/png"
PDF, TEXT = "application/pdf", "text/plain"
DOC, XLS, PPT = "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

# The message type each accepted file type is sent as.
KINDS = {
    JPEG: MessageType.IMAGE, PNG: MessageType.IMAGE,
    PDF: MessageType.DOCUMENT, TEXT: MessageType.DOCUMENT, DOC: MessageType.DOCUMENT, XLS: MessageType.DOCUMENT,
    PPT: MessageType.DOCUMENT, DOCX: MessageType.DOCUMENT, XLSX: MessageType.DOCUMENT, PPTX: MessageType.DOCUMENT,
}  # fmt: skip
# What the composer's file input offers (the server decides from the bytes all the same), and
# what an input for one kind of file offers (a template's image or document header).
EXTENSIONS = {
    MessageType.IMAGE: [".jpg", ".jpeg", ".png"],
    MessageType.DOCUMENT: [".pdf", ".txt", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx"],
}
ACCEPT = ",".join([*KINDS, *EXTENSIONS[MessageType.IMAGE], *EXTENSIONS[MessageType.DOCUMENT]])


def accept_of(kind: str) -> str:
    return ",".join([*(mime for mime, k in KINDS.items() if k == kind), *EXTENSIONS[kind]])

# WhatsApp's limit for a media caption.
CAPTION_MAX_LENGTH = 1024
# Bytes read to tell the type (and, for text, that it is text).
HEAD_BYTES = 64 * 1024
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of .doc, .xls, .ppt
# The folder of an Office Open XML ZIP that says which kind of document it is.
OOXML_PARTS = {"word/": DOCX, "xl/": XLSX, "ppt/": PPTX}
FILENAME_MAX_LENGTH = 200


class AttachmentRefused(ValueError):
    """The file cannot be sent; the message is for the staff member."""


@dataclass(frozen=True)
class Attachment:
    """A file checked for sending: its message type, its real type, and its bytes."""

    kind: str  # MessageType.IMAGE or MessageType.DOCUMENT
    mime_type: str
    filename: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def max_bytes(kind: str) -> int:
    return settings.MEDIA_OUT_IMAGE_MAX_BYTES if kind == MessageType.IMAGE else settings.MEDIA_OUT_DOCUMENT_MAX_BYTES


def attachment_check(file: File, *, claimed_type: str = "") -> Attachment:
    """The file as it will be sent, or `AttachmentRefused` saying why not (a type WhatsApp does
    not take, too large, empty). Nothing is stored or uploaded here."""
    name = filename_clean(file.name or "")
    size = file.size or 0
    if size <= 0:
        raise AttachmentRefused(_("%(name)s is empty.") % {"name": name})
    file.seek(0)
    head = file.read(HEAD_BYTES)
    mime_type = _sniff(file, head, claimed_type=claimed_type.split(";")[0].strip().lower())
    if mime_type is None:
        raise AttachmentRefused(
            _("%(name)s cannot be sent on WhatsApp: attach an image (JPEG, PNG) or a document (PDF, Word, Excel, PowerPoint, text).")
            % {"name": name}
        )
    kind = KINDS[mime_type]
    if size > max_bytes(kind):
        limit = filesizeformat(max_bytes(kind))
        message = (
            _("%(name)s is too large (%(size)s): an image can be at most %(limit)s.")
            if kind == MessageType.IMAGE
            else _("%(name)s is too large (%(size)s): a document can be at most %(limit)s.")
        )
        raise AttachmentRefused(message % {"name": name, "size": filesizeformat(size), "limit": limit})
    file.seek(0)
    return Attachment(kind=kind, mime_type=mime_type, filename=name, content=file.read())


def filename_clean(name: str) -> str:
    """The name the customer sees on a document: no folders, no control characters, not too long."""
    name = os.path.basename(name.replace("\\", "/"))
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > FILENAME_MAX_LENGTH:
        stem, ext = os.path.splitext(name)
        name = stem[: FILENAME_MAX_LENGTH - len(ext)] + ext
    return name or "file"


def _sniff(file: File, head: bytes, *, claimed_type: str) -> str | None:
    """The type the bytes are, among those WhatsApp takes (None: none of them)."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(OLE2_MAGIC):
        # The container does not say which program wrote it without reading its directory;
        # the three are sent alike, so the browser's claim names it when it is one of them.
        return claimed_type if claimed_type in (DOC, XLS, PPT) else _ole2_from_name(file.name or "")
    if head.startswith(b"PK\x03\x04"):
        return _ooxml(file)
    if _is_text(head) and (not claimed_type or claimed_type.startswith("text/") or claimed_type == "application/octet-stream"):
        return TEXT
    return None


def _ole2_from_name(name: str) -> str | None:
    return {".doc": DOC, ".xls": XLS, ".ppt": PPT}.get(os.path.splitext(name)[1].lower())


def _ooxml(file: File) -> str | None:
    """A Word, Excel or PowerPoint file (a ZIP of XML parts), or None for any other ZIP."""
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for folder, mime_type in OOXML_PARTS.items():
        if any(n.startswith(folder) for n in names):
            return mime_type
    return None


def _is_text(head: bytes) -> bool:
    """UTF-8 (or ASCII) text without NUL bytes; a character cut at the end of `head` is fine."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True
