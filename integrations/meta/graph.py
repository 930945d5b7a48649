"""Meta's Graph API for WhatsApp (Cloud API): send, mark read, fetch media, upload media, list templates.

Each call makes one attempt and raises `ProviderError` on failure, saying whether trying
again can help (`permanent`) and how long Meta asked us to wait (`retry_after`); the caller
owns the retry policy. The access token travels only in the Authorization header and never
appears in an error's text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from django.conf import settings
from django.utils.translation import gettext_noop

from .. import http
from ..base import Identity, Media, MediaExpired, MediaRefused, Outgoing, ProviderError, Rejected, TemplateListing
from ..redaction import redact
from .parser import MEDIA_TYPES, ItemError, template_of

# Meta error codes where waiting and trying again helps (rate limits, transient faults).
TEMPORARY_CODES = {
    1,  # API unknown
    2,  # API service temporarily unavailable
    4,  # application request limit reached
    17,  # user request limit reached
    80007,  # WABA rate limit
    130429,  # Cloud API throughput limit
    131000,  # something went wrong
    131016,  # service unavailable
    131056,  # pair rate limit: too many messages to the same number
    133004,  # server temporarily unavailable
}
# Reasons for staff are stored as written here (`gettext_noop`) and translated where staff read
# them; a reason with a detail is "<reason>: <detail>" (`conversations.texts`).
TOO_LARGE = gettext_noop("The file is larger than allowed for its type, so it was not kept; the limit in KB")  # ": <KB>"
# A few permanent errors worth a plain-language reason on the message.
REASONS = {
    131047: gettext_noop("More than 24 hours since the customer's last message: only a template can be sent."),
    190: gettext_noop("The WhatsApp access token has expired or is invalid: update it in the channel settings."),
    131026: gettext_noop("The message could not be delivered (the number may not be on WhatsApp)."),
    131051: gettext_noop("Unsupported message type."),
    131052: gettext_noop("The media could not be downloaded."),
    131053: gettext_noop("The media could not be uploaded."),
    133010: gettext_noop("The business phone number is not registered with the Cloud API."),
    368: gettext_noop("Temporarily blocked for policy violations."),
    131031: gettext_noop("The business account has been locked."),
    100: gettext_noop("Invalid parameter in the request."),
    # Templates (Meta's error codes reference).
    131050: gettext_noop("The customer stopped marketing messages from this business."),
    132000: gettext_noop("The number of template variables does not match the template."),
    132001: gettext_noop("The template does not exist in this language, or is not approved yet."),
    132005: gettext_noop("The template's text with its variables filled in is too long."),
    132007: gettext_noop("The template's content breaks WhatsApp's policy."),
    132012: gettext_noop("A template variable has the wrong format (e.g. text where the header expects an image)."),
    132015: gettext_noop("The template is paused because of its low quality: it cannot be sent for now."),
    132016: gettext_noop("The template is disabled because of its low quality: it cannot be sent any more."),
}
# What a listing of templates asks for, how many a page, and at most how many pages are read.
TEMPLATE_FIELDS = "id,name,language,category,status,quality_score,components,parameter_format,rejected_reason"
TEMPLATE_PAGE_SIZE = 100
TEMPLATE_PAGES_MAX = 60  # WhatsApp allows a business account at most 6,000 templates
# Largest media file fetched (WhatsApp's own limit for documents is 100 MB).
MEDIA_MAX_BYTES = 100 * 1024 * 1024


class GraphClient:
    def __init__(self, *, phone_number_id: str, access_token: str, api_version: str = ""):
        self.phone_number_id = phone_number_id
        self._token = access_token.strip()
        self.api_version = api_version or settings.WHATSAPP_API_VERSION
        self.base_url = settings.WHATSAPP_API_BASE_URL.rstrip("/")

    def __repr__(self) -> str:  # never the token
        return f"GraphClient(phone_number_id={self.phone_number_id!r}, api_version={self.api_version!r})"

    async def send(self, outgoing: Outgoing, *, to: Identity) -> str:
        """The wamid Meta gives the message. It goes to the phone number when one is known
        (`to`), otherwise to the business-scoped user id (`recipient`): never both."""
        address = {"to": to.phone} if to.phone else {"recipient": to.user_id}
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **address, **_content(outgoing)}
        if outgoing.reply_to and outgoing.type != "reaction":  # a reaction names its message in its own object
            body["context"] = {"message_id": outgoing.reply_to}
        data = await self._request("POST", f"{self.phone_number_id}/messages", body)
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise ProviderError("Graph API answered without a message id", permanent=False) from None

    async def mark_read(self, wamid: str, *, typing: bool = True) -> None:
        """Blue ticks on the customer's message and, optionally, the typing indicator (shown
        until we reply, or for at most 25 seconds)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        await self._request("POST", f"{self.phone_number_id}/messages", body)

    async def fetch_media(self, media_id: str, *, url: str = "", sha256: str = "", max_bytes: int | None = None) -> Media:
        """A media item a message carried, checked against its sha256 and `max_bytes`.

        Meta's webhook may carry the item's URL (`url`): tried first, with the token. When that
        fails (run out, refused, unreachable) the media id is looked up for a fresh URL (valid
        for 5 minutes) and the bytes come from there. Meta keeps an item for a limited time (a
        webhook's media id lasts 7 days at most, on some numbers much less): `MediaExpired`
        when it no longer has it; `MediaRefused` when the bytes are not the ones announced or
        are larger than the limit.
        """
        limit = MEDIA_MAX_BYTES if max_bytes is None else min(max_bytes, MEDIA_MAX_BYTES)
        if url:
            try:
                return await self._media_download(url, sha256=sha256, mime_type="", limit=limit)
            except MediaRefused:
                raise
            except ProviderError:
                pass  # the webhook's URL has run out or failed: a fresh one from the media id
        try:
            info = await self._request("GET", f"{media_id}?phone_number_id={self.phone_number_id}")
        except ProviderError as exc:
            # Meta answers an id it no longer has with 404, or 400 "Unsupported get request" (code 100).
            if exc.http_status in (404, 410) or (exc.http_status == 400 and exc.code == 100):
                raise _expired(exc) from None
            raise
        fresh = str(info.get("url") or "")
        if not fresh:
            raise ProviderError("Graph API answered without a media URL", permanent=False)
        expected, mime_type = str(info.get("sha256") or sha256), str(info.get("mime_type") or "")
        return await self._media_download(fresh, sha256=expected, mime_type=mime_type, limit=limit)

    async def _media_download(self, url: str, *, sha256: str, mime_type: str, limit: int) -> Media:
        try:
            content, content_type = await self._download(url, limit=limit)
        except ProviderError as exc:
            if exc.http_status in (404, 410):
                raise _expired(exc) from None
            raise
        digest = hashlib.sha256(content)
        # Meta's webhooks give the sha256 in base64; accept it in hex too.
        if sha256 and sha256.lower() != digest.hexdigest() and sha256 != base64.b64encode(digest.digest()).decode():
            raise MediaRefused(
                "The media downloaded does not match its sha256", permanent=True,
                reason_text=gettext_noop("The file received does not match the one WhatsApp announced (sha256): it was not kept."),
            )  # fmt: skip
        return Media(content=content, mime_type=mime_type or content_type, sha256=digest.hexdigest())

    async def templates_list(self, business_account_id: str) -> TemplateListing:
        """Every message template of the business account, page after page (Meta's `after`
        cursor), at most TEMPLATE_PAGES_MAX pages. A template that cannot be read is skipped
        with the reason; the others are listed."""
        listing = TemplateListing()
        after = ""
        for _page in range(TEMPLATE_PAGES_MAX):
            query = {"fields": TEMPLATE_FIELDS, "limit": str(TEMPLATE_PAGE_SIZE), **({"after": after} if after else {})}
            data = await self._request("GET", f"{quote(business_account_id, safe='')}/message_templates?{urlencode(query)}")
            raw_items = data.get("data")
            if not isinstance(raw_items, list):
                raise ProviderError("Graph API listed templates without a 'data' list", permanent=False)
            for raw in raw_items:
                try:
                    listing.templates.append(template_of(raw))
                except ItemError as exc:
                    item_id = str(raw.get("id") or "")[:64] if isinstance(raw, dict) else ""
                    listing.rejected.append(Rejected("template", str(exc)[:500], item_id))
            paging = data.get("paging") if isinstance(data.get("paging"), dict) else {}
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
            after = str(cursors.get("after") or "")
            if not paging.get("next") or not after:
                return listing
        listing.complete = False
        return listing

    async def upload_media(self, content: bytes, *, mime_type: str, filename: str) -> str:
        """The id Meta gives a file uploaded to send (it keeps the file 30 days): a multipart
        POST of `messaging_product`, the file's `type` and the `file` itself."""
        # Unquoted: the name as written (UTF-8, as browsers send it), not percent-encoded; no
        # control character can break out of its header line.
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        filename = "".join(ch for ch in filename if ch.isprintable()) or "file"
        form.add_field("file", content, filename=filename, content_type=mime_type)
        data = await self._request("POST", f"{self.phone_number_id}/media", form=form)
        media_id = str(data.get("id") or "")
        if not media_id:
            raise ProviderError("Graph API answered the upload without a media id", permanent=False)
        return media_id

    # --- transport -------------------------------------------------------------------------
    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=settings.WHATSAPP_HTTP_CONNECT_TIMEOUT, sock_read=settings.WHATSAPP_HTTP_READ_TIMEOUT
        )

    async def _request(self, method: str, path: str, body: dict | None = None, *, form: aiohttp.FormData | None = None) -> dict:
        """One call: a JSON `body`, or a multipart `form` (an upload)."""
        url = f"{self.base_url}/{self.api_version}/{path}"
        try:
            async with http.session().request(
                method, url, json=body, data=form, headers={"Authorization": f"Bearer {self._token}"}, timeout=self._timeout()
            ) as response:
                raw = await response.read()
                if response.status < 400:
                    try:
                        data = json.loads(raw) if raw else {}
                    except ValueError:
                        data = {}
                    return data if isinstance(data, dict) else {}
                raise _error(response.status, response.reason or "", raw, response.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise ProviderError("Timed out talking to the Graph API", permanent=False) from None
        except aiohttp.ClientError as exc:
            # `from None`: the chained exception could carry request details.
            raise ProviderError(f"Could not reach the Graph API: {redact(type(exc).__name__)}", permanent=False) from None

    async def _download(self, url: str, *, limit: int) -> tuple[bytes, str]:
        try:
            async with http.session().get(url, headers={"Authorization": f"Bearer {self._token}"}, timeout=self._timeout()) as response:
                if response.status >= 400:
                    raise _error(response.status, response.reason or "", await response.read(), response.headers.get("Retry-After"))
                if (response.content_length or 0) > limit:
                    raise _too_large(limit)
                # `read(n)` returns what is buffered, up to n bytes: read to the end, counting.
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
                return b"".join(chunks), response.content_type
        except asyncio.TimeoutError:
            raise ProviderError("Timed out downloading the media", permanent=False) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"Could not download the media: {redact(type(exc).__name__)}", permanent=False) from None


def _expired(error: ProviderError) -> MediaExpired:
    return MediaExpired(
        f"The media is no longer available: {error}", permanent=True, code=error.code, title=error.title,
        http_status=error.http_status, reason_text=gettext_noop("WhatsApp no longer has this file."),
    )  # fmt: skip


def _too_large(limit: int) -> MediaRefused:
    return MediaRefused(
        f"The media is larger than the limit ({limit} bytes)", permanent=True,
        reason_text=f"{TOO_LARGE}: {limit // 1024:,}",
    )  # fmt: skip


def _content(outgoing: Outgoing) -> dict:
    """The type-specific part of a send's body."""
    kind = outgoing.type
    if kind == "text":
        return {"type": "text", "text": {"body": outgoing.text, "preview_url": False}}
    if kind == "template":
        template = outgoing.template or {}
        content: dict[str, Any] = {"name": template.get("name", ""), "language": {"code": (template.get("language") or {}).get("code", "it")}}
        if template.get("components"):
            content["components"] = template["components"]
        return {"type": "template", "template": content}
    if kind == "reaction":
        # An empty emoji takes the business's reaction away.
        return {"type": "reaction", "reaction": {"message_id": outgoing.reply_to, "emoji": outgoing.text}}
    if kind in MEDIA_TYPES:
        media: dict[str, Any] = {"id": outgoing.media["id"]} if outgoing.media.get("id") else {"link": outgoing.media.get("link", "")}
        if outgoing.text and kind in ("image", "video", "document"):
            media["caption"] = outgoing.text
        if outgoing.media.get("filename") and kind == "document":
            media["filename"] = outgoing.media["filename"]
        return {"type": kind, kind: media}
    raise ProviderError(f"Cannot send a message of type {kind!r}", permanent=True)


def _error(status: int, reason: str, raw: bytes, retry_after_header: str | None) -> ProviderError:
    try:
        error = json.loads(raw).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    title = str(error.get("error_user_title") or error.get("type") or "")
    message = str(error.get("message") or reason or f"HTTP {status}")
    detail = str((error.get("error_data") or {}).get("details") or error.get("error_user_msg") or "")
    temporary = status == 429 or status >= 500 or code in TEMPORARY_CODES
    return ProviderError(
        message=redact(f"Graph API error {code or status}: {message}"),
        permanent=not temporary,
        code=code,
        title=redact(title or message)[:255],
        detail=redact(detail),
        http_status=status,
        retry_after=_retry_after(retry_after_header),
        reason_text=REASONS.get(code or -1, ""),
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None
