"""Console URLs for many rows at once, without a `reverse()` per row.

A page lists 50 conversations with two links each, and a thread header has a dozen action
URLs: reversing each one cost about a fifth of the page's rendering time. The URL of a
pattern that takes one primary key is reversed once (per script prefix) with a marker in
place of the key, and then only formatted.
"""

from __future__ import annotations

from functools import lru_cache

from django.urls import get_script_prefix, reverse

# Digits, so any `<int:pk>` converter accepts it; long, so it cannot occur elsewhere in a URL.
_MARKER = 918273645546372819


@lru_cache(maxsize=128)
def _split(name: str, prefix: str) -> tuple[str, str]:
    # `prefix` is only the cache key: `reverse` reads the same script prefix itself.
    head, marker, tail = reverse(name, args=[_MARKER]).partition(str(_MARKER))
    if not marker:
        raise ValueError(f"{name} does not take a primary key")
    return head, tail


def pk_url(name: str, pk: int) -> str:
    """`reverse(name, args=[pk])` for a pattern whose only argument is an integer key."""
    head, tail = _split(name, get_script_prefix())
    return f"{head}{int(pk)}{tail}"


# The actions of a thread page, by the key templates use (`urls.take_over`).
THREAD_URL_NAMES = (
    "thread", "thread_poll", "thread_older", "reply", "react", "take_over", "hand_back", "resolve", "reopen", "assign",
    "note_add", "template_form", "template_preview", "template_send",
)  # fmt: skip


def thread_urls(pk: int) -> dict[str, str]:
    return {name: pk_url(f"console:{name}", pk) for name in THREAD_URL_NAMES}
