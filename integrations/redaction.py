"""Secrets out of every log line and every error text that could reach one.

Tokens can reach a log through an exception's text (a URL with `access_token=`, a header
dump) as well as through a message, so the filter rewrites the final formatted text.
"""

import logging
import re

from django.conf import settings

_PATTERNS = [
    re.compile(r"(Bearer\s+)[A-Za-z0-9._\-~+/=]+", re.IGNORECASE),
    re.compile(r"((?:access_token|api_key|apikey|token|secret|password)=['\"]?)[^&\s'\"]+", re.IGNORECASE),
    re.compile(r"\b(sk-)[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\b(EAA)[A-Za-z0-9]{20,}"),  # Meta user/system access tokens start with EAA
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    for secret in _known_secrets():
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _known_secrets() -> list[str]:
    return [
        getattr(settings, name, "")
        for name in ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "OPENAI_API_KEY", "SECRET_KEY")
    ]


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
