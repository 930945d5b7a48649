"""Migration conversations/0012: times stored before the parser refused them (year 9999, 1970)
are cleared, so the pages they broke answer again."""

from datetime import datetime, timezone

import pytest

from conversations.models import Conversation, Message
from profiles.models import ClientProfile

from .factories import ConversationFactory, MessageFactory
from .migrations import migrated_to, migrated_to_latest

pytestmark = pytest.mark.django_db

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_impossible_times_are_cleared_and_possible_ones_kept(admin_member_client):
    conversation = ConversationFactory()
    bad, good = MessageFactory(conversation=conversation), MessageFactory(conversation=conversation)
    kept = good.provider_timestamp
    Message.objects.filter(pk=bad.pk).update(provider_timestamp=FAR_FUTURE)
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=FAR_FUTURE, last_message_at=FAR_FUTURE)
    ClientProfile.objects.filter(pk=conversation.profile_id).update(first_contact_at=EPOCH, last_contact_at=FAR_FUTURE)
    migrated_to("conversations", "0011_message_origin")

    migrated_to_latest()

    assert Message.objects.get(pk=bad.pk).provider_timestamp is None
    assert Message.objects.get(pk=good.pk).provider_timestamp == kept
    conversation.refresh_from_db()
    now = datetime.now(tz=timezone.utc)
    assert conversation.last_inbound_at <= now and conversation.last_message_at <= now
    profile = ClientProfile.objects.get(pk=conversation.profile_id)
    assert datetime(2009, 1, 1, tzinfo=timezone.utc) <= profile.first_contact_at <= now and profile.last_contact_at <= now
    assert admin_member_client.get(f"/console/c/{conversation.pk}/").status_code == 200
    assert admin_member_client.get("/admin/profiles/clientprofile/").status_code == 200
