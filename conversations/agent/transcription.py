"""A voice note's words: OpenAI's transcription of its bytes (`POST /audio/transcriptions`,
the model OPENAI_TRANSCRIBE_MODEL), with the customer's language as a hint when known.
Plain values in and out; the turn reads the stored file and keeps the transcript."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from . import openai_client

# What OpenAI takes (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm), by the MIME types
# WhatsApp sends. It needs a file name with the right extension to know the format; a voice
# note comes without a name. Others (AMR, AAC) go as they are: OpenAI refuses them, and the
# customer gets the acknowledgement.
_EXTENSIONS = {
    "audio/ogg": "ogg", "audio/opus": "ogg", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a", "audio/m4a": "m4a",
    "audio/x-m4a": "m4a", "audio/wav": "wav", "audio/x-wav": "wav", "audio/webm": "webm", "audio/flac": "flac",
    "audio/aac": "aac", "audio/amr": "amr",
}  # fmt: skip


@dataclass(frozen=True)
class Transcript:
    text: str
    model: str
    seconds: float | None = None  # the audio's length, when OpenAI bills by duration


def transcription_request(*, audio: bytes, mime_type: str, language: str) -> dict:
    """The `audio.transcriptions.create` arguments for one voice note. `language`: ISO 639-1,
    or "" when the customer's is not known (the model then finds it)."""
    mime = mime_type.split(";")[0].strip().lower()
    request: dict = {
        "model": settings.OPENAI_TRANSCRIBE_MODEL,
        "file": (f"voice-note.{_EXTENSIONS.get(mime, mime.rpartition('/')[2] or 'ogg')}", audio, mime or "audio/ogg"),
        "response_format": "json",
    }
    if language:
        request["language"] = language
    return request


async def transcribe(*, audio: bytes, mime_type: str, language: str) -> Transcript:
    """The voice note's words; `AIError` when OpenAI could not give them."""
    request = transcription_request(audio=audio, mime_type=mime_type, language=language)
    answer = await openai_client.transcription_create(**request)
    usage = getattr(answer, "usage", None)
    seconds = getattr(usage, "seconds", None) if getattr(usage, "type", "") == "duration" else None
    return Transcript(text=(getattr(answer, "text", "") or "").strip(), model=request["model"], seconds=seconds)
