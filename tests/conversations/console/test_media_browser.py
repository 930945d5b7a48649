"""A customer's photo and voice note in the console, in Chromium: the photo inline (loaded
through the staff-only media view), enlarged in a dialog on click; the voice note in an audio
player with its transcript. A browser without the session gets the login page, not the photo.
Screenshots go to artifacts/screenshots/."""

import io
import struct
import wave
import zlib

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from conversations.models import MediaFile, MediaState
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import ChannelFactory, ConversationFactory, MessageFactory, UserFactory

pytestmark = BROWSER_TEST


def png(width: int, height: int) -> bytes:
    """A real PNG: a blue-to-green gradient."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (20, 80 + 160 * x // width, 200 - 150 * y // height)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def voice() -> bytes:
    """Half a second of a tone, as audio bytes (WAV: no encoder for Opus here; served as Meta
    serves a voice note, audio/ogg, and played by the browser all the same)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", 8000 if (n // 10) % 2 else -8000) for n in range(4000)))
    return out.getvalue()


def stored(message, content: bytes, mime_type: str, name: str) -> MediaFile:
    media_file = MediaFile(message=message, state=MediaState.STORED, mime_type=mime_type, size=len(content))
    media_file.file.save(name, ContentFile(content), save=False)
    media_file.save()
    return media_file


def test_a_photo_shows_inline_and_enlarges_and_a_voice_note_plays(transactional_db, live_server, browser_context, session_login):
    from playwright.sync_api import expect

    ChannelFactory()
    conversation = ConversationFactory(profile__profile_name="Giulia")
    photo = MessageFactory(conversation=conversation, type="image", text="La crepa sul muro", media={"id": "m-1", "mime_type": "image/png"})
    stored(photo, png(480, 320), "image/png", "image.png")
    note = MessageFactory(
        conversation=conversation, type="audio", text="", media={"id": "m-2", "mime_type": "audio/ogg; codecs=opus", "voice": True},
        transcript="Buongiorno, la crepa è comparsa ieri sera.",
    )  # fmt: skip
    stored(note, voice(), "audio/ogg; codecs=opus", "audio.ogg")

    page = browser_context(viewport={"width": 1280, "height": 860}).new_page()
    session_login(page.context, UserFactory(username="anna", first_name="Anna"))
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")

    thumb = page.locator(f"#msg-{photo.pk} img.media-thumb")
    expect(thumb).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 480", arg=thumb.element_handle())  # the bytes, through the session
    player = page.locator(f"#msg-{note.pk} audio[controls]")
    expect(player).to_be_visible()
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0.4", arg=player.element_handle())  # it loaded and can play
    expect(page.locator(f"#msg-{note.pk}").get_by_test_id("transcript")).to_have_text("Buongiorno, la crepa è comparsa ieri sera.")
    screenshot(page, "console-media-photo-and-voice-note.png")

    thumb.click()
    viewer = page.locator("#media-viewer")
    expect(viewer).to_be_visible()
    big = viewer.locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth === 480", arg=big.element_handle())
    assert big.bounding_box()["width"] > thumb.bounding_box()["width"]
    screenshot(page, "console-media-photo-enlarged.png")
    big.click()
    expect(viewer).to_be_hidden()

    # Without the session: the login page, never the photo.
    anonymous = browser_context().new_page()
    response = anonymous.goto(live_server.url + reverse("console:media", args=(conversation.pk, photo.pk)))
    assert "/console/login/" in anonymous.url and response.headers["content-type"].startswith("text/html")
