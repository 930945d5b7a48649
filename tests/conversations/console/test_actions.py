"""Take over (and its race), hand back, resolve, reopen, assign, reply, the 24-hour window,
notes, and staff edits of the client profile."""

import json
import threading

import pytest
from django.db import connection
from django.utils import timezone

from conversations.models import Author, Conversation, ConversationNote, ConversationStatus, Message, MessageStatus, Owner
from conversations.services import console as actions
from profiles.models import FieldSource
from profiles.services import profile_field_set
from tests.conversations.conftest import MESSAGES_PATH, deliver
from tests.conversations.factories import ConversationFactory

from .conftest import client_for

pytestmark = pytest.mark.django_db


def post(client, url, data=None):
    return client.post(url, data or {}, HTTP_HX_REQUEST="true")


def reload(conversation) -> Conversation:
    return Conversation.objects.select_related("assigned_to").get(pk=conversation.pk)


# --- Take over ----------------------------------------------------------------------------------


def test_taking_over_makes_the_agent_the_human_owner_and_bumps_the_revision(agent_client, agent, conversation):
    response = post(agent_client, f"/console/c/{conversation.pk}/take-over/")
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"])["poll-now"] is True
    fresh = reload(conversation)
    assert (fresh.owner, fresh.assigned_to) == (Owner.HUMAN, agent)
    assert fresh.revision == conversation.revision + 1


def test_the_second_agent_to_take_over_is_told_who_has_it(agent_client, other_agent, conversation):
    post(agent_client, f"/console/c/{conversation.pk}/take-over/")
    response = post(client_for(other_agent), f"/console/c/{conversation.pk}/take-over/")
    assert "Anna Bianchi" in response.content.decode() and 'class="alert error"' in response.content.decode()
    assert reload(conversation).assigned_to.username == "anna"


def test_a_conversation_waiting_in_the_queue_can_be_taken_by_anyone(other_agent, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN, assigned_to=None)
    assert actions.conversation_take_over(conversation_id=conversation.pk, user=other_agent).won


@pytest.mark.django_db(transaction=True)
def test_two_agents_taking_over_at_the_same_moment_one_wins_and_the_other_is_told(agent, other_agent):
    if connection.vendor != "postgresql":
        pytest.skip("needs row locks")
    conversation = ConversationFactory()
    for _ in range(10):  # a race: run it a few times
        Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.BOT, assigned_to=None)
        barrier = threading.Barrier(2)
        results = {}

        def take(user):
            try:
                barrier.wait()
                results[user.username] = actions.conversation_take_over(conversation_id=conversation.pk, user=user)
            finally:
                connection.close()

        threads = [threading.Thread(target=take, args=(u,)) for u in (agent, other_agent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [name for name, r in results.items() if r.won]
        losers = [r for r in results.values() if not r.won]
        assert len(winners) == 1 and len(losers) == 1
        fresh = reload(conversation)
        assert fresh.assigned_to.username == winners[0]
        assert losers[0].holder == fresh.assigned_to.get_full_name()


# --- Hand back, resolve, reopen, assign -------------------------------------------------------


def test_handing_back_gives_the_conversation_to_the_bot(agent_client, agent, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN, assigned_to=agent, handoff_reason="Vuole un umano")
    post(agent_client, f"/console/c/{conversation.pk}/hand-back/")
    fresh = reload(conversation)
    assert (fresh.owner, fresh.assigned_to, fresh.handoff_reason) == (Owner.BOT, None, "")


def test_resolving_and_reopening(agent_client, conversation):
    post(agent_client, f"/console/c/{conversation.pk}/resolve/")
    assert reload(conversation).status == ConversationStatus.RESOLVED
    post(agent_client, f"/console/c/{conversation.pk}/reopen/")
    assert reload(conversation).status == ConversationStatus.OPEN


def test_assigning_to_a_staff_member_gives_them_the_conversation_and_unassigning_puts_it_in_the_queue(
    agent_client, other_agent, conversation
):
    post(agent_client, f"/console/c/{conversation.pk}/assign/", {"assignee": other_agent.pk})
    fresh = reload(conversation)
    assert (fresh.owner, fresh.assigned_to) == (Owner.HUMAN, other_agent)
    post(agent_client, f"/console/c/{conversation.pk}/assign/", {"assignee": ""})
    fresh = reload(conversation)
    assert (fresh.owner, fresh.assigned_to) == (Owner.HUMAN, None)


def test_a_conversation_cannot_be_assigned_to_someone_who_is_not_staff(agent_client, customer_user, conversation):
    response = post(agent_client, f"/console/c/{conversation.pk}/assign/", {"assignee": customer_user.pk})
    assert 'class="alert error"' in response.content.decode()
    assert reload(conversation).assigned_to is None


def test_without_javascript_an_action_redirects_back_to_the_thread(agent_client, conversation):
    response = agent_client.post(f"/console/c/{conversation.pk}/take-over/")
    assert response.status_code == 302 and response["Location"] == f"/console/c/{conversation.pk}/"


# --- Reply and the 24-hour window ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the delivery has a database connection of its own
def test_a_staff_reply_is_stored_pending_takes_the_conversation_over_and_is_sent_by_the_task(
    agent_client, agent, conversation, graph_api
):
    graph_api.expect_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"messages": [{"id": "wamid.staff1"}]}
    )
    response = post(agent_client, f"/console/c/{conversation.pk}/reply/", {"text": "  Buongiorno, controllo subito  "})
    assert json.loads(response["HX-Trigger"]) == {"poll-now": True, "reply-sent": True}
    message = Message.objects.get(author=Author.STAFF)
    assert (message.status, message.text, message.sent_by) == (MessageStatus.PENDING, "Buongiorno, controllo subito", agent)
    fresh = reload(conversation)
    assert (fresh.owner, fresh.assigned_to) == (Owner.HUMAN, agent)

    assert deliver(message.pk) == "sent"
    message.refresh_from_db()
    assert (message.status, message.wamid) == (MessageStatus.SENT, "wamid.staff1")
    sent_body = json.loads(graph_api.log[0][0].get_data())
    assert sent_body["to"] == "393331234567" and sent_body["text"]["body"] == "Buongiorno, controllo subito"


def test_a_reply_is_refused_while_another_agent_handles_the_conversation(agent_client, other_agent, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(owner=Owner.HUMAN, assigned_to=other_agent)
    response = post(agent_client, f"/console/c/{conversation.pk}/reply/", {"text": "Ciao"})
    assert "Bruno Verdi" in response.content.decode()
    assert not Message.objects.filter(author=Author.STAFF).exists()


def test_outside_the_24_hour_window_the_composer_is_closed_and_says_why(agent_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=25))
    html = agent_client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert 'class="composer-closed"' in html and "<textarea name=\"text\" id=\"composer-text\"" not in html
    assert "modello approvato" in html  # Italian, the default: "an approved template"
    assert 'class="window closed"' in html


def test_inside_the_window_the_composer_is_open_with_a_countdown(agent_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=23))
    html = agent_client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert 'id="composer-text"' in html
    assert 'class="window open"' in html and "data-closes-at=" in html


def test_a_reply_outside_the_window_is_refused_by_the_server_too(agent_client, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now() - timezone.timedelta(hours=24, seconds=1))
    response = post(agent_client, f"/console/c/{conversation.pk}/reply/", {"text": "Ciao"})
    assert "24" in response.content.decode() and 'class="alert error"' in response.content.decode()
    assert not Message.objects.filter(author=Author.STAFF).exists()
    assert reload(conversation).owner == Owner.BOT  # a refused reply takes nothing over


def test_a_customer_who_never_wrote_cannot_be_sent_free_text(agent_client):
    conversation = ConversationFactory(last_inbound_at=None)
    response = post(agent_client, f"/console/c/{conversation.pk}/reply/", {"text": "Ciao"})
    assert 'class="alert error"' in response.content.decode()


def test_an_empty_reply_is_refused(agent_client, conversation):
    response = post(agent_client, f"/console/c/{conversation.pk}/reply/", {"text": "   "})
    assert 'class="alert error"' in response.content.decode()
    assert not Message.objects.filter(author=Author.STAFF).exists()


def test_the_composer_offers_the_active_quick_replies(agent_client, conversation):
    from conversations.models import QuickReply

    QuickReply.objects.create(shortcut="orari", title="Orari", text="Siamo aperti 9-18")
    QuickReply.objects.create(shortcut="vecchio", title="Vecchio", text="x", is_active=False)
    html = agent_client.get(f"/console/c/{conversation.pk}/").content.decode()
    data = json.loads(html.split('<script id="quick-replies" type="application/json">')[1].split("</script>")[0])
    assert data == [{"shortcut": "orari", "title": "Orari", "text": "Siamo aperti 9-18"}]


# --- Notes ----------------------------------------------------------------------------------------


def test_an_internal_note_is_kept_for_staff_and_never_sent(agent_client, agent, conversation):
    response = post(agent_client, f"/console/c/{conversation.pk}/notes/", {"text": "Cliente VIP, richiamare"})
    assert "Cliente VIP, richiamare" in response.content.decode()
    note = ConversationNote.objects.get()
    assert (note.author, note.conversation_id) == (agent, conversation.pk)
    assert Message.objects.filter(text__contains="Cliente VIP").count() == 0


# --- Client profile -----------------------------------------------------------------------------


def test_the_profile_panel_shows_where_each_value_came_from_and_what_is_missing(agent_client, agent, conversation):
    profile = conversation.profile
    profile.company, profile.first_name, profile.provenance = "", "", {}
    profile.save()
    source = conversation.messages.filter(author=Author.CUSTOMER).first()
    profile_field_set(profile=profile, field="first_name", value="Giulia", source=FieldSource.AI, message=source)
    profile_field_set(profile=profile, field="email", value="g.russo@example.com", source=FieldSource.STAFF, user=agent)
    html = agent_client.get(f"/console/c/{conversation.pk}/").content.decode()
    panel = html[html.index('id="side-panel"') :]
    def field(key):  # a field's block, up to the next field's (its icons are inline SVG, of no fixed length)
        return panel[panel.index(f'id="pfield-{key}"') :].split(' id="pfield-', 1)[0]

    assert "g.russo@example.com" in field("email") and "anna" in field("email")
    assert f'href="#msg-{source.pk}"' in field("first_name") and "il mio ordine" in field("first_name")
    assert 'id="missing-summary"' in panel
    summary = panel[panel.index('id="missing-summary"') :][:300]
    assert "company" in summary.lower() or "azienda" in summary.lower()


def test_a_staff_edit_is_saved_as_staff_and_the_ai_cannot_overwrite_it(agent_client, agent, conversation):
    url = f"/console/c/{conversation.pk}/profile/company/"
    form = agent_client.get(url, {"edit": 1}, HTTP_HX_REQUEST="true").content.decode()
    assert '<form class="pfield editing" id="pfield-company"' in form and 'value="Rossi Srl"' in form

    response = post(agent_client, url, {"value": "Rossi & Figli Srl"})
    assert 'id="pfield-company"' in response.content.decode() and "Rossi &amp; Figli Srl" in response.content.decode()
    profile = conversation.profile
    profile.refresh_from_db()
    assert profile.company == "Rossi & Figli Srl"
    assert profile.provenance["company"]["source"] == FieldSource.STAFF and profile.provenance["company"]["user"] == "anna"

    assert profile_field_set(profile=profile, field="company", value="Altro", source=FieldSource.AI) is None
    profile.refresh_from_db()
    assert profile.company == "Rossi & Figli Srl"


def test_a_bad_value_is_refused_inline_with_the_reason(agent_client, conversation):
    response = post(agent_client, f"/console/c/{conversation.pk}/profile/email/", {"value": "not-an-email"})
    html = response.content.decode()
    assert '<form class="pfield editing"' in html and 'class="alert error"' in html
    conversation.profile.refresh_from_db()
    assert conversation.profile.email == "giulia@example.com"


def test_an_unknown_profile_field_is_not_editable(agent_client, conversation):
    assert post(agent_client, f"/console/c/{conversation.pk}/profile/is_superuser/", {"value": "1"}).status_code == 404


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("take-over", {}), ("hand-back", {}), ("resolve", {}), ("reopen", {}), ("assign", {"assignee": ""}),
        ("reply", {"text": "Buongiorno"}), ("notes", {"text": "richiamare"}),
    ],
)  # fmt: skip
def test_an_action_on_a_missing_conversation_is_a_404_and_changes_nothing(agent_client, action, data):
    response = agent_client.post(f"/console/c/999999/{action}/", data, HTTP_HX_REQUEST="true")

    assert response.status_code == 404
    assert not Message.objects.exists() and not ConversationNote.objects.exists()
