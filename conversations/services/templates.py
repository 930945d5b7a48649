"""Message templates: what a template asks for (its variables), what the customer sees with
them filled in (`template_render`, the preview's and the stored text's one renderer), the
parameters a send carries (`template_components`), and the listing a sync brings, stored
(`templates_store`).

A template's components are kept as Meta gives them: a HEADER (TEXT with at most one
variable, or IMAGE / VIDEO / DOCUMENT / LOCATION), a BODY whose text has variables, a
FOOTER, BUTTONS (a URL button may end in a variable: the suffix). Variables are positional
(`{{1}}`, sent in order) or named (`{{customer_name}}`, sent with `parameter_name`), as the
template's `parameter_format` says.

An IMAGE or DOCUMENT header takes an https link or a file staff attach (one of the two). The
file is stored with the message and uploaded by its delivery, so the components kept with the
message name it by HEADER_FILE_ID, which `template_header_file_fill` replaces with the id the
provider gave the upload (a VIDEO header takes a link only: `attachments` cannot tell a video
WhatsApp plays from its bytes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.base import TemplateListing

from ..models import MessageTemplate, MessageType, TemplateCategory
from ..sql import pipelined_transaction
from ..sql.templates import templates_apply
from .attachments import Attachment

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
# Headers a file staff attach can fill, and the message type the file must be.
FILE_FORMATS = {"IMAGE": MessageType.IMAGE, "DOCUMENT": MessageType.DOCUMENT}
# The header's media id in the stored components while the file is not uploaded yet.
HEADER_FILE_ID = "{{file}}"
# Buttons a send needs nothing for; a URL button needs its suffix when its URL has a variable.
PLAIN_BUTTONS = ("QUICK_REPLY", "PHONE_NUMBER", "VOICE_CALL")
# WhatsApp's limits: a header's text, the body with its variables filled in, a URL.
HEADER_TEXT_MAX_LENGTH = 60
BODY_MAX_LENGTH = 1024
LINK_MAX_LENGTH = 2000
_SPACES = re.compile(r" {5,}")
_https = URLValidator(schemes=["https"])


@dataclass(frozen=True)
class Variable:
    """One input of a template's form. `key` names it in the form and in `values`:
    "header.<name>", "header.link", "header.file" (the attached file's name),
    "header.latitude" (…longitude, name, address), "body.<name>" (a position or a parameter
    name), "button.<index>"."""

    key: str
    part: str  # header, body, button
    name: str
    kind: str  # text, link, file, number, suffix
    example: str = ""
    label: str = ""


class TemplateValuesError(ValueError):
    """Values a template cannot be sent with: `errors` by variable key ("" for the whole)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def _component(template: MessageTemplate, kind: str) -> dict:
    for component in template.components or []:
        if str(component.get("type", "")).upper() == kind:
            return component
    return {}


def _names(text: str) -> list[str]:
    seen: list[str] = []
    for name in PLACEHOLDER.findall(text or ""):
        if name not in seen:
            seen.append(name)
    return sorted(seen, key=int) if seen and all(n.isdigit() for n in seen) else seen


def _examples(example: dict, positional_key: str, named_key: str) -> dict[str, str]:
    """Meta's sample values of a component: positional (`body_text`: [[...]], `header_text`:
    [...]) or named ([{param_name, example}])."""
    out: dict[str, str] = {}
    named = example.get(named_key)
    if isinstance(named, list):
        out.update({str(p.get("param_name")): str(p.get("example", "")) for p in named if isinstance(p, dict)})
    positional = example.get(positional_key)
    if isinstance(positional, list) and positional and isinstance(positional[0], list):
        positional = positional[0]
    if isinstance(positional, list):
        out.update({str(i): str(v) for i, v in enumerate(positional, start=1)})
    return out


def template_unsupported(template: MessageTemplate) -> str:
    """Why the console cannot send the template ("" when it can)."""
    if template.category.upper() == TemplateCategory.AUTHENTICATION:
        return _("Authentication templates carry one-time codes: they are sent by the business's own systems.")
    for component in template.components or []:
        kind = str(component.get("type", "")).upper()
        if kind not in ("HEADER", "BODY", "FOOTER", "BUTTONS"):
            return _("The template has a part the console cannot fill in (%(part)s).") % {"part": kind.lower()}
        if kind == "HEADER" and str(component.get("format", "TEXT")).upper() not in ("TEXT", "LOCATION", *MEDIA_FORMATS):
            return _("The template has a part the console cannot fill in (%(part)s).") % {"part": str(component.get("format")).lower()}
        for button in component.get("buttons", []) if kind == "BUTTONS" else []:
            if str(button.get("type", "")).upper() not in (*PLAIN_BUTTONS, "URL"):
                return _("The template has a part the console cannot fill in (%(part)s).") % {"part": str(button.get("type")).lower()}
    return ""


def template_variables(template: MessageTemplate) -> list[Variable]:
    """The inputs a send of `template` needs, in the order the customer reads them."""
    variables: list[Variable] = []
    header = _component(template, "HEADER")
    if header:
        form = str(header.get("format", "TEXT")).upper()
        example = header.get("example") if isinstance(header.get("example"), dict) else {}
        if form == "TEXT":
            samples = _examples(example, "header_text", "header_text_named_params")
            for name in _names(header.get("text", "")):
                variables.append(Variable(f"header.{name}", "header", name, "text", samples.get(name, ""), _("Header: %(name)s") % {"name": name}))
        elif form in MEDIA_FORMATS:
            label = {"IMAGE": _("Header image (https link)"), "VIDEO": _("Header video (https link; a video cannot be attached)"),
                     "DOCUMENT": _("Header document (https link)")}  # fmt: skip
            variables.append(Variable("header.link", "header", "link", "link", "", label[form]))
            if form in FILE_FORMATS:
                label = {"IMAGE": _("…or attach the image (JPEG, PNG)"), "DOCUMENT": _("…or attach the document")}
                variables.append(Variable("header.file", "header", "file", "file", "", label[form]))
        elif form == "LOCATION":
            for name, kind, label in (
                ("latitude", "number", _("Latitude")), ("longitude", "number", _("Longitude")),
                ("name", "text", _("Place name")), ("address", "text", _("Address")),
            ):  # fmt: skip
                variables.append(Variable(f"header.{name}", "header", name, kind, "", label))
    body = _component(template, "BODY")
    example = body.get("example") if isinstance(body.get("example"), dict) else {}
    samples = _examples(example, "body_text", "body_text_named_params")
    for name in _names(body.get("text", "")):
        variables.append(Variable(f"body.{name}", "body", name, "text", samples.get(name, ""), _("Body: %(name)s") % {"name": name}))
    for index, button in enumerate(_component(template, "BUTTONS").get("buttons", [])):
        if str(button.get("type", "")).upper() == "URL" and PLACEHOLDER.search(str(button.get("url", ""))):
            sample = (button.get("example") or [""])[0] if isinstance(button.get("example"), list) else ""
            label = _("Link of the button “%(text)s” (the end of %(url)s)") % {"text": button.get("text", ""), "url": button.get("url", "")}
            variables.append(Variable(f"button.{index}", "button", str(index), "suffix", str(sample), label))
    return variables


def _fill(text: str, part: str, values: Mapping[str, str]) -> str:
    """`text` with each variable replaced by its value; one without a value stays as it is
    written (the preview shows what is still to fill in)."""
    return PLACEHOLDER.sub(lambda m: values.get(f"{part}.{m[1]}") or m[0], text or "")


def template_render(template: MessageTemplate, values: Mapping[str, str]) -> str:
    """What the customer reads: header, body and footer, then the buttons' labels. The text
    stored on the sent message, and the preview's."""
    parts = []
    header = _component(template, "HEADER")
    form = str(header.get("format", "TEXT")).upper() if header else ""
    if form == "TEXT":
        parts.append(_fill(header.get("text", ""), "header", values))
    elif form == "LOCATION" and (values.get("header.name") or values.get("header.address")):
        parts.append("📍 " + ", ".join(v for v in (values.get("header.name"), values.get("header.address")) if v))
    parts.append(_fill(_component(template, "BODY").get("text", ""), "body", values))
    parts.append(str(_component(template, "FOOTER").get("text", "")))
    buttons = [f"[{b.get('text', '')}]" for b in _component(template, "BUTTONS").get("buttons", []) if b.get("text")]
    if buttons:
        parts.append("\n".join(buttons))
    return "\n\n".join(p for p in parts if p)


def template_components(template: MessageTemplate, values: Mapping[str, str]) -> list[dict]:
    """The `components` of a send: each variable's value as Meta takes it (named ones with
    their `parameter_name`), header media by link, or, for an attached file
    (`values["header.file"]`: its name), by HEADER_FILE_ID until the delivery uploads it."""
    named = template.parameter_format.upper() == "NAMED"

    def text(part: str, name: str) -> dict:
        parameter = {"type": "text", "text": values[f"{part}.{name}"]}
        return {**parameter, "parameter_name": name} if named else parameter

    components: list[dict] = []
    variables = template_variables(template)
    header = [v for v in variables if v.part == "header"]
    if header:
        form = str(_component(template, "HEADER").get("format", "TEXT")).upper()
        if form in MEDIA_FORMATS and values.get("header.file"):
            media = {"id": HEADER_FILE_ID}
            if form == "DOCUMENT":  # the name the customer sees on the document
                media["filename"] = values["header.file"]
            parameter = {"type": form.lower(), form.lower(): media}
        elif form in MEDIA_FORMATS:
            parameter = {"type": form.lower(), form.lower(): {"link": values["header.link"]}}
        elif form == "LOCATION":
            place = {name: values[f"header.{name}"] for name in ("latitude", "longitude", "name", "address")}
            parameter = {"type": "location", "location": place}
        else:
            parameter = text("header", header[0].name)
        components.append({"type": "header", "parameters": [parameter]})
    body = [v for v in variables if v.part == "body"]
    if body:
        components.append({"type": "body", "parameters": [text("body", v.name) for v in body]})
    for v in variables:
        if v.part == "button":
            components.append({"type": "button", "sub_type": "url", "index": v.name, "parameters": [{"type": "text", "text": values[v.key]}]})
    return components


def template_header_file_fill(components: list[dict], *, media_id: str) -> list[dict]:
    """The stored components with the attached file's HEADER_FILE_ID replaced by `media_id`, the
    id the provider gave its upload. `ValueError` when they name a file and there is no id."""
    filled = []
    for component in components:
        if component.get("type") == "header":
            parameters = []
            for parameter in component.get("parameters", []):
                media = parameter.get(parameter.get("type", ""))
                if isinstance(media, dict) and media.get("id") == HEADER_FILE_ID:
                    if not media_id:
                        raise ValueError("the template's header file was not uploaded")
                    parameter = {**parameter, parameter["type"]: {**media, "id": media_id}}
                parameters.append(parameter)
            component = {**component, "parameters": parameters}
        filled.append(component)
    return filled


def template_values_check(template: MessageTemplate, given: Mapping[str, str], *, attachment: Attachment | None = None) -> dict[str, str]:
    """The values of every variable, trimmed; `TemplateValuesError` naming each one that is
    missing or that WhatsApp would refuse. `attachment`: a file staff attached for the header
    (checked by `attachment_check`), instead of its link; its name is the "header.file" value."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    variables = template_variables(template)
    for v in variables:
        if v.kind == "file":
            continue  # the attachment, checked below
        value = str(given.get(v.key) or "").strip()
        values[v.key] = value
        if v.kind == "link" and not value and attachment is not None:
            continue
        if v.kind == "link" and not value and any(f.kind == "file" for f in variables):
            errors[v.key] = _("Give the header an https link or attach a file.")
            continue
        error = _value_error(v, value)
        if error:
            errors[v.key] = error
    if attachment is not None:
        error = _file_error(template, attachment, link=values.get("header.link", ""))
        if error:
            errors["header.file"] = error
        else:
            values["header.file"] = attachment.filename
    if not errors:
        body = _fill(_component(template, "BODY").get("text", ""), "body", values)
        if len(body) > BODY_MAX_LENGTH:
            errors[""] = _("With these values the message is %(n)d characters long: WhatsApp takes at most %(max)d.") % {
                "n": len(body), "max": BODY_MAX_LENGTH,
            }  # fmt: skip
    if errors:
        raise TemplateValuesError(errors)
    return values


def template_header_file_kind(template: MessageTemplate) -> str:
    """The message type a file attached for the header must be ("": the header takes no file)."""
    return FILE_FORMATS.get(str(_component(template, "HEADER").get("format", "")).upper(), "")


def _file_error(template: MessageTemplate, attachment: Attachment, *, link: str) -> str:
    """Why the header cannot be the attached file ("" when it can)."""
    kind = template_header_file_kind(template)
    if not kind:
        return _("This template's header takes no file.")
    if link:
        return _("Give the header a link or attach a file, not both.")
    if attachment.kind != kind:
        if kind == MessageType.IMAGE:
            return _("The header takes an image (JPEG, PNG): %(name)s is a document.") % {"name": attachment.filename}
        return _("The header takes a document: %(name)s is an image.") % {"name": attachment.filename}
    return ""


def _value_error(v: Variable, value: str) -> str:
    if not value:
        return _("Fill in “%(label)s”.") % {"label": v.label}
    if v.kind == "link":
        try:
            _https(value)
        except ValidationError:
            return _("“%(label)s” must be an https:// link.") % {"label": v.label}
        return _("The link is too long.") if len(value) > LINK_MAX_LENGTH else ""
    if v.kind == "number":
        try:
            number = float(value)
        except ValueError:
            return _("“%(label)s” must be a number.") % {"label": v.label}
        limit = 90 if v.name == "latitude" else 180
        return "" if math.isfinite(number) and abs(number) <= limit else _("“%(label)s” is out of range.") % {"label": v.label}
    if v.kind == "suffix":
        return _("“%(label)s” cannot contain spaces.") % {"label": v.label} if any(c.isspace() for c in value) else ""
    # WhatsApp refuses a variable with a new line, a tab or more than four spaces in a row.
    if "\n" in value or "\t" in value or _SPACES.search(value):
        return _("“%(label)s” cannot contain new lines, tabs or more than four spaces in a row.") % {"label": v.label}
    if v.part == "header" and v.kind == "text" and len(value) > HEADER_TEXT_MAX_LENGTH:
        return _("“%(label)s” is too long (at most %(n)d characters).") % {"label": v.label, "n": HEADER_TEXT_MAX_LENGTH}
    return ""


# --- The sync's listing, stored --------------------------------------------------------------


@dataclass
class SyncResult:
    business_account_id: str
    created: int = 0
    updated: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: reason" of the items that could not be read
    complete: bool = True


def templates_store(*, business_account_id: str, listing: TemplateListing, fetched_at) -> SyncResult:
    """Upsert the listed templates of the account (as of `fetched_at`, when the listing was
    asked for) and mark the ones Meta no longer lists as gone, in one transaction. An
    incomplete listing removes nothing."""
    rows = [
        {
            "business_account_id": business_account_id, "name": t.name, "language": t.language, "template_id": t.template_id,
            "status": t.status, "reason": t.reason, "status_at": fetched_at, "quality_score": t.quality, "quality_at": fetched_at,
            "category": t.category, "category_at": fetched_at, "components": t.components, "parameter_format": t.parameter_format,
            "synced_at": fetched_at,
        }
        for t in listing.templates
    ]  # fmt: skip
    result = SyncResult(business_account_id=business_account_id, complete=listing.complete)
    result.skipped = [f"{r.item_id or '?'}: {r.reason}" for r in listing.rejected]
    with transaction.atomic():
        with pipelined_transaction() as cursor:
            applied = templates_apply(cursor, rows)
        result.created = sum(1 for a in applied if a.created)
        result.updated = len(applied) - result.created
        if listing.complete:
            # Not a template a webhook brought in while the listing was read.
            result.removed = (
                MessageTemplate.objects.filter(business_account_id=business_account_id, deleted_at__isnull=True, created_at__lt=fetched_at)
                .exclude(pk__in=[a.id for a in applied])
                .update(deleted_at=timezone.now(), updated_at=timezone.now())
            )
    return result
