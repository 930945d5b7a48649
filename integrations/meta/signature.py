"""Meta signs every webhook POST: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
body, keyed with the app secret>`."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"


def signature_valid(*, body: bytes, header: str, app_secret: str) -> bool:
    # Not ASCII: no hex digest, and `compare_digest` would raise on it.
    if not header or not app_secret or not header.startswith("sha256=") or not header.isascii():
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for `body` (the simulator, tests and benchmarks sign with it)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
