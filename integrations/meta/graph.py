"""Meta's Graph API for WhatsApp (Cloud API): send, mark read, fetch media, upload media.

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

import aiohttp
from django.conf import settings

from .. import http
from ..base import Identity, Media, Outgoing, ProviderError
from ..redaction import redact
from .parser import MEDIA_TYPES

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
# A few permanent errors worth a plain-language reason on the message.
REASONS = {
    131047: "More than 24 hours since the customer's last message: only a template can be sent.",
    190: "The WhatsApp access token has expired or is invalid: update it in the channel settings.",
    131026: "The message could not be delivered (the number may not be on WhatsApp).",
    131051: "Unsupported message type.",
    131052: "The media could not be downloaded.",
    131053: "The media could not be uploaded.",
    133010: "The business phone number is not registered with the Cloud API.",
    368: "Temporarily blocked for policy violations.",
    131031: "The business account has been locked.",
    100: "Invalid parameter in the request.",
}
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

    async def fetch_media(self, media_id: str) -> Media:
        """A media item a customer sent: its URL first (valid for 5 minutes), then the bytes,
        checked against the sha256 Meta gives."""
        info = await self._request("GET", f"{media_id}?phone_number_id={self.phone_number_id}")
        url, expected = str(info.get("url") or ""), str(info.get("sha256") or "")
        if not url:
            raise ProviderError("Graph API answered without a media URL", permanent=False)
        content, mime_type = await self._download(url)
        digest = hashlib.sha256(content)
        # Meta's webhooks give the sha256 in base64; accept it in hex too.
        if expected and expected.lower() != digest.hexdigest() and expected != base64.b64encode(digest.digest()).decode():
            raise ProviderError("The media downloaded does not match its sha256", permanent=False)
        return Media(content=content, mime_type=str(info.get("mime_type") or mime_type), sha256=digest.hexdigest())

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

    async def _download(self, url: str) -> tuple[bytes, str]:
        try:
            async with http.session().get(url, headers={"Authorization": f"Bearer {self._token}"}, timeout=self._timeout()) as response:
                if response.status >= 400:
                    raise _error(response.status, response.reason or "", await response.read(), response.headers.get("Retry-After"))
                if (response.content_length or 0) > MEDIA_MAX_BYTES:
                    raise ProviderError("The media is larger than the limit", permanent=True)
                # `read(n)` returns what is buffered, up to n bytes: read to the end, counting.
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MEDIA_MAX_BYTES:
                        raise ProviderError("The media is larger than the limit", permanent=True)
                    chunks.append(chunk)
                return b"".join(chunks), response.content_type
        except asyncio.TimeoutError:
            raise ProviderError("Timed out downloading the media", permanent=False) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(f"Could not download the media: {redact(type(exc).__name__)}", permanent=False) from None


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
