"""The conversation list: what each row shows, search, filters, keyset pages, the cheap poll."""

import re

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import ConversationStatus, Owner
from conversations.selectors import ListFilter, conversation_list
from tests.conversations.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'id="conv-(\d+)"', html)]


def test_a_row_shows_name_preview_time_unread_owner_assignee_and_completeness(agent_client, conversation, agent):
    conversation.owner, conversation.assigned_to = Owner.HUMAN, agent
    conversation.save()
    html = agent_client.get("/console/").content.decode()
    row = html[html.index(f'id="conv-{conversation.pk}"') :]
    row = row[: row.index("</li>")]
    assert "Giulia Russo" in row
    assert "Ciao, il mio ordine?" in row
    assert '<span class="badge"' in row and ">2<" in row
    assert "owner-human" in row and "Anna Bianchi" in row
    assert "</svg> 4/4" in row  # first and last name, company, email


def test_a_row_falls_back_to_the_whatsapp_name_then_the_number(agent_client):
    ConversationFactory(profile__profile_name="Zio Pino", profile__first_name="")
    ConversationFactory(profile__profile_name="", profile__wa_id="393470000001")
    html = agent_client.get("/console/").content.decode()
    assert "Zio Pino" in html
    assert "+393470000001" in html


def test_a_customer_without_a_number_is_shown_by_its_username_without_a_query_per_row(agent_client):
    ConversationFactory(profile__username_only=True, profile__username="@giulia.r", profile__profile_name="")
    html = agent_client.get("/console/").content.decode()
    assert '<span class="conv-name">@giulia.r</span>' in html and '<span class="avatar">G</span>' in html
    one_row = len(_list_queries(agent_client))
    for _ in range(5):
        ConversationFactory(profile__username_only=True, profile__profile_name="")

    assert len(_list_queries(agent_client)) == one_row


def _list_queries(client) -> list:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/").status_code == 200
    return queries.captured_queries


@pytest.mark.parametrize("query", ["@giulia.r", "giulia.r", "GIULIA.R", "@giulia"])
def test_search_finds_a_customer_by_its_username(agent, query):
    found = ConversationFactory(profile__username_only=True, profile__username="giulia.r", profile__profile_name="")
    ConversationFactory(profile__username_only=True, profile__username="@marco", profile__profile_name="")
    assert [c.pk for c in conversation_list(user=agent, query=query).rows] == [found.pk]


def test_a_conversation_waiting_for_a_human_is_shown_as_queue(agent_client):
    ConversationFactory(owner=Owner.HUMAN, assigned_to=None)
    assert "owner-queue" in agent_client.get("/console/").content.decode()


@pytest.mark.parametrize(
    "query",
    ["giulia", "RUSSO", "giulia russo", "rossi srl", "giulia@example", "3331234567", "+39 333 123 4567", "non è arrivato"],
)
def test_search_finds_a_conversation_by_name_number_email_company_or_message_text(agent, conversation, query):
    ConversationFactory(profile__profile_name="Someone else", profile__wa_id="441234000000")
    page = conversation_list(user=agent, query=query)
    assert [c.pk for c in page.rows] == [conversation.pk]


def test_search_through_the_page_swaps_only_the_list(agent_client, conversation):
    ConversationFactory(profile__profile_name="Someone else")
    response = agent_client.get("/console/list/", {"q": "arrivato"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert row_ids(html) == [conversation.pk]
    assert "<html" not in html
    assert 'id="list-body"' in html


def test_filters_needs_a_human_mine_unassigned_and_resolved(agent, other_agent):
    bot = ConversationFactory()
    queue = ConversationFactory(owner=Owner.HUMAN)
    mine = ConversationFactory(owner=Owner.HUMAN, assigned_to=agent)
    theirs = ConversationFactory(owner=Owner.HUMAN, assigned_to=other_agent)
    done = ConversationFactory(status=ConversationStatus.RESOLVED)

    def ids(list_filter):
        return {c.pk for c in conversation_list(user=agent, list_filter=list_filter).rows}

    assert ids(ListFilter.NEEDS_HUMAN) == {queue.pk}
    assert ids(ListFilter.MINE) == {mine.pk}
    assert ids(ListFilter.UNASSIGNED) == {bot.pk, queue.pk}
    assert ids(ListFilter.RESOLVED) == {done.pk}
    assert ids(ListFilter.ALL) == {bot.pk, queue.pk, mine.pk, theirs.pk, done.pk}


def test_pages_follow_each_other_without_gaps_or_repeats_even_with_equal_times(agent):
    same_time = timezone.now() - timezone.timedelta(hours=1)
    for i in range(7):
        ConversationFactory(last_message_at=same_time if i % 2 else same_time - timezone.timedelta(minutes=i))
    ConversationFactory(last_message_at=None)
    seen, cursor = [], ""
    while True:
        page = conversation_list(user=agent, cursor=cursor, limit=3)
        seen += [c.pk for c in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == 8 == len(set(seen))
    expected = list(
        ConversationFactory._meta.model.objects.order_by(F("last_message_at").desc(nulls_first=True), "-id").values_list("pk", flat=True)
    )
    assert seen == expected


def test_the_list_page_costs_the_same_queries_for_5_or_50_rows(agent_client, agent):
    for _ in range(5):
        ConversationFactory(owner=Owner.HUMAN, assigned_to=agent)
    with CaptureQueriesContext(connection) as few:
        agent_client.get("/console/")
    for _ in range(45):
        ConversationFactory(owner=Owner.HUMAN, assigned_to=agent)
    with CaptureQueriesContext(connection) as many:
        html = agent_client.get("/console/").content.decode()
    assert len(row_ids(html)) == 50
    assert len(many) == len(few)


def test_scrolling_to_the_end_loads_the_next_page(agent_client, agent):
    for _ in range(55):
        ConversationFactory()
    html = agent_client.get("/console/").content.decode()
    cursor = re.search(r'hx-get="/console/list/\?cursor=([^&"]+)', html).group(1)
    more = agent_client.get("/console/list/", {"cursor": cursor}, HTTP_HX_REQUEST="true").content.decode()
    assert len(row_ids(html)) == 50 and len(row_ids(more)) == 5
    assert not set(row_ids(html)) & set(row_ids(more))


def test_a_list_poll_with_no_change_is_a_single_indexed_query_and_an_empty_204(agent_client, conversation, django_assert_num_queries):
    html = agent_client.get("/console/").content.decode()
    poll_url = re.search(r'id="list-poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    agent_client.get(poll_url)  # warm the session
    with CaptureQueriesContext(connection) as queries:
        response = agent_client.get(poll_url)
    assert response.status_code == 204 and response.content == b""
    own = [q["sql"] for q in queries if "django_session" not in q["sql"] and "auth_user" not in q["sql"]]
    # Besides the session and the user every logged-in request loads: one query.
    assert len(queries) == 3
    assert len(own) == 1
    assert '"changed_at" >' in own[0] and "LIMIT 1" in own[0]


def test_a_list_poll_returns_the_list_again_once_something_changed(agent_client, conversation):
    html = agent_client.get("/console/").content.decode()
    poll_url = re.search(r'id="list-poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    newcomer = ConversationFactory(profile__profile_name="Nuovo Cliente")
    response = agent_client.get(poll_url, {"count": 50}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert row_ids(response.content.decode())[0] == newcomer.pk


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_postgresql_serves_the_searches_and_the_poll_from_indexes(agent, conversation):
    from conversations.models import Conversation, Message
    from conversations.selectors import profile_search_condition
    from profiles.models import ClientProfile

    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    plans = {
        "profiles": ClientProfile.objects.filter(profile_search_condition("giulia")).explain(),
        "username": ClientProfile.objects.filter(profile_search_condition("@giulia.r")).explain(),
        # On a handful of rows the planner may walk the primary key instead: ask the bare lookup.
        "message text": Message.objects.filter(text__icontains="arrivato").values("conversation_id").explain(),
        "poll": Conversation.objects.filter(changed_at__gt=timezone.now()).order_by("-changed_at")[:1].explain(),
        "thread poll": Conversation.objects.filter(pk=conversation.pk, revision__gt=0).explain(),
    }
    assert "profile_search_trgm_idx" in plans["profiles"] and "profile_search_trgm_idx" in plans["username"]
    assert "msg_text_trgm_idx" in plans["message text"]
    assert "conv_changed_idx" in plans["poll"]
    assert "conversations_conversation_pkey" in plans["thread poll"]
