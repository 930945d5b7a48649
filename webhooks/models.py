from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    RECEIVED = "received", _("Received, not yet processed")
    PROCESSED = "processed", _("Processed")
    PARTIAL = "partial", _("Processed, some items skipped")
    IGNORED = "ignored", _("Well formed, nothing to act on")
    BAD_SIGNATURE = "bad_signature", _("Rejected: signature missing or wrong")
    MALFORMED = "malformed", _("Rejected: malformed body")
    UNKNOWN_CHANNEL = "unknown_channel", _("No active channel for this number")
    FAILED = "failed", _("Processing failed")


class WebhookEvent(models.Model):
    """Every webhook POST as received, so any delivery can be inspected and replayed."""

    provider = models.CharField(_("provider"), max_length=16, default="meta")
    channel = models.ForeignKey(
        "conversations.Channel", verbose_name=_("channel"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    body = models.TextField(_("body"), blank=True)  # as text: what cannot be (not UTF-8, NUL) is U+FFFD
    # The body's bytes when `body` is not them, for a verified delivery only (the one kind
    # replayed): PostgreSQL's text refuses NUL, and bytes that are not UTF-8 have no text.
    raw_body = models.BinaryField(_("raw body"), null=True, blank=True)
    signature = models.CharField(_("signature"), max_length=255, blank=True)
    signature_valid = models.BooleanField(_("valid signature"), default=False)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.TextField(_("detail"), blank=True)
    # Items of the delivery that could not be read or stored, each {"kind", "id", "reason"}:
    # skipped, while the others were handled.
    skipped = models.JSONField(_("skipped items"), default=list, blank=True)
    message_count = models.PositiveIntegerField(_("messages"), default=0)
    status_count = models.PositiveIntegerField(_("statuses"), default=0)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        indexes = [
            models.Index(fields=["-received_at"], name="webhook_recent_idx"),
            models.Index(fields=["outcome", "-received_at"], name="webhook_outcome_idx"),
        ]

    @property
    def delivered_body(self) -> bytes:
        """The body exactly as it was received (of a verified delivery)."""
        return bytes(self.raw_body) if self.raw_body is not None else self.body.encode()

    def __str__(self) -> str:
        return f"#{self.pk} {self.provider} {self.outcome} {self.received_at:%Y-%m-%d %H:%M:%S}"
