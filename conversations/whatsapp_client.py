"""A client for Meta's WhatsApp Cloud API (Graph API), on `requests`.

Each call makes one attempt and raises `WhatsAppError` on failure. The error says whether
trying again can help (`permanent`) and how long Meta asked us to wait (`retry_after`);
the Celery task owns the retry policy. The access token travels only in the
Authorization header and never appears in an exception's text.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from whatsbot.logging import redact

logger = logging.getLogger(__name__)

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
RATE_LIMIT_CODES = {4, 17, 80007, 130429, 131056}
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


@dataclass
class WhatsAppError(Exception):
    message: str
    permanent: bool
    code: int | None = None
    title: str = ""
    detail: str = ""
    http_status: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @property
    def rate_limited(self) -> bool:
        return self.http_status == 429 or self.code in RATE_LIMIT_CODES

    @property
    def reason(self) -> str:
        return REASONS.get(self.code or -1) or self.title or self.message


_local = threading.local()


def _session() -> requests.Session:
    # One pooled session per thread: requests.Session is not documented as thread-safe, and
    # the worker may run a thread pool.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session


class WhatsAppClient:
    def __init__(self, *, phone_number_id: str, access_token: str, api_version: str | None = None, base_url: str | None = None):
        self.phone_number_id = phone_number_id
        self._token = access_token.strip()
        self.api_version = api_version or settings.WHATSAPP_API_VERSION
        self.base_url = (base_url or settings.WHATSAPP_API_BASE_URL).rstrip("/")

    @classmethod
    def for_channel(cls, channel) -> WhatsAppClient:
        return cls(phone_number_id=channel.phone_number_id, access_token=channel.access_token, api_version=channel.graph_api_version)

    def __repr__(self) -> str:  # never the token
        return f"WhatsAppClient(phone_number_id={self.phone_number_id!r}, api_version={self.api_version!r})"

    # --- sending ------------------------------------------------------------------------
    def send_text(self, *, to: str, body: str, reply_to: str = "", preview_url: bool = False) -> str:
        payload: dict[str, Any] = {"type": "text", "text": {"body": body, "preview_url": preview_url}}
        return self._send(to=to, payload=payload, reply_to=reply_to)

    def send_media(self, *, to: str, kind: str, media_id: str = "", link: str = "", caption: str = "", filename: str = "") -> str:
        media: dict[str, Any] = {"id": media_id} if media_id else {"link": link}
        if caption and kind in ("image", "video", "document"):
            media["caption"] = caption
        if filename and kind == "document":
            media["filename"] = filename
        return self._send(to=to, payload={"type": kind, kind: media})

    def send_template(self, *, to: str, name: str, language: str, components: list | None = None) -> str:
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = components
        return self._send(to=to, payload={"type": "template", "template": template})

    def mark_read(self, *, wamid: str, typing: bool = True) -> None:
        """Blue ticks on the customer's message and, optionally, the typing indicator
        (shown until we reply, or for at most 25 seconds)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        self._post(f"{self.phone_number_id}/messages", body)

    def _send(self, *, to: str, payload: dict, reply_to: str = "") -> str:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **payload}
        if reply_to:
            body["context"] = {"message_id": reply_to}
        data = self._post(f"{self.phone_number_id}/messages", body)
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise WhatsAppError("Graph API answered without a message id", permanent=False) from None

    # --- transport ----------------------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        url = f"{self.base_url}/{self.api_version}/{path}"
        try:
            response = _session().post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=(settings.WHATSAPP_HTTP_CONNECT_TIMEOUT, settings.WHATSAPP_HTTP_READ_TIMEOUT),
            )
        except requests.Timeout:
            raise WhatsAppError("Timed out talking to the Graph API", permanent=False) from None
        except requests.RequestException as exc:
            # `from None`: the chained exception could carry request details.
            raise WhatsAppError(f"Could not reach the Graph API: {redact(type(exc).__name__)}", permanent=False) from None
        if response.ok:
            try:
                return response.json()
            except ValueError:
                return {}
        raise _error_from(response)


def _error_from(response: requests.Response) -> WhatsAppError:
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    title = str(error.get("error_user_title") or error.get("type") or "")
    message = str(error.get("message") or response.reason or f"HTTP {status}")
    detail = str((error.get("error_data") or {}).get("details") or error.get("error_user_msg") or "")
    retry_after = _retry_after(response.headers.get("Retry-After"))
    temporary = status == 429 or status >= 500 or (code in TEMPORARY_CODES)
    return WhatsAppError(
        message=redact(f"Graph API error {code or status}: {message}"),
        permanent=not temporary,
        code=code,
        title=redact(title or message)[:255],
        detail=redact(detail),
        http_status=status,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        from django.utils import timezone

        try:
            return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
        except (TypeError, ValueError):
            return None
