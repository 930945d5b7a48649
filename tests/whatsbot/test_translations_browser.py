"""One language at a time, in Chromium: a member of staff who prefers Italian reads no English
string of the catalogue on the console, the simulator or admin, and one who prefers English
reads the English ones (whatever language the browser asks for). Screenshots of each page in
both languages go to artifacts/screenshots/i18n-<language>-<page>.png."""

import re

import pytest
from django.contrib.auth.models import Group

from conversations.agent.prompts import FIXED_MESSAGES
from conversations.agent.replies import HANDOFF_ASKED
from conversations.models import Author, Direction, MediaFile, MediaState, MessageStatus, MessageType, Owner
from conversations.roles import ADMINS_GROUP, role_groups_ensure
from conversations.services.sweeps import NOT_DELIVERED
from conversations.texts import RETRYING
from integrations.meta.graph import REASONS, TOO_LARGE
from profiles.models import StaffPreference
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from tests.pofile import po_read
from tests.whatsbot.test_translations import PO

pytestmark = BROWSER_TEST
PASSWORD = "correct-horse-battery"
# Catalogue entries whose English is also an Italian word or a name the pages show as is
# (checked by hand: each is translated where it is the English word).
ALSO_ITALIAN = {"data", "media", "file", "email", "Bot", "Template", "Marketing", "Sandbox (simulator)"}


def _catalogue() -> list[tuple[str, str]]:
    """(English, Italian) of every translated entry where the two differ."""
    pairs = []
    for entry in po_read(PO):
        if entry.obsolete or not entry.translated:
            continue
        for english, italian in [(entry.msgid, entry.msgstr[0]), *([(entry.msgid_plural, entry.msgstr[-1])] if entry.msgid_plural else [])]:
            if english != italian:
                pairs.append((english, italian))
    return pairs


def _fixed_part(text: str) -> str:
    """The longest run of a catalogue string without a placeholder (what a page can show verbatim)."""
    parts = re.split(r"%\(\w+\)[sdr]|%[sd]|\{\w*\}", text)
    return max((p.strip(" :.,;()") for p in parts), key=len)


def _found(strings: set[str], page_text: str) -> list[str]:
    """The strings that appear in the page's text as whole words (case kept), but for what
    the bot says to customers in their language (the built-in texts admin shows as they are)."""
    for said in (text for by_language in FIXED_MESSAGES.values() for text in by_language.values()):
        page_text = page_text.replace(said, "")
    found = []
    for text in strings:
        if len(text) < 3 or text in ALSO_ITALIAN:
            continue
        # Not inside a word, nor a JSON key or a {placeholder} (code, shown as code in help texts).
        if re.search(rf"(?<![\w'\"{{]){re.escape(text)}(?![\w'\"}}])", page_text):
            found.append(text)
    return sorted(found)


@pytest.fixture
def desk(transactional_db):
    """A conversation with a person's hand-off, a failed message, a retrying one, and files in
    every state staff can meet."""
    role_groups_ensure()
    conversation = ConversationFactory(owner=Owner.HUMAN, handoff_reason=HANDOFF_ASKED)
    MessageFactory(conversation=conversation, text="Buongiorno, vorrei parlare con una persona")
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, status=MessageStatus.FAILED,
        text="Ecco il modulo", error_code="131047", error_title=REASONS[131047],
    )  # fmt: skip
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, status=MessageStatus.PENDING,
        wamid=None, text="Arrivo", error_title=f"{RETRYING}: {REASONS[131026]}",
    )  # fmt: skip
    MessageFactory(
        conversation=conversation, direction=Direction.OUTBOUND, author=Author.STAFF, status=MessageStatus.FAILED,
        wamid=None, text="Riprovo", error_code="undelivered", error_title=f"{NOT_DELIVERED}: 3",
    )  # fmt: skip
    for state, error in [
        (MediaState.REFUSED, f"{TOO_LARGE}: 5,120"),
        (MediaState.FAILED, f"{RETRYING}: {REASONS[131052]}"),
        (MediaState.EXPIRED, "WhatsApp no longer has this file."),
        (MediaState.PENDING, ""),
    ]:
        message = MessageFactory(conversation=conversation, type=MessageType.IMAGE, text="", media={"id": f"m-{state}"})
        MediaFile.objects.create(message=message, state=state, error=error, mime_type="image/jpeg")
    return conversation


def _log_in(browser_context, live_server, *, language: str, browser_language: str):
    """Log in through the console's form as an admin whose preference is `language`, in a
    browser asking for `browser_language`."""
    user = UserFactory(username=f"staff-{language}", first_name="Giulia", password=PASSWORD)
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    StaffPreference.objects.create(user=user, language=language)
    context = browser_context(
        viewport={"width": 1280, "height": 900}, locale=browser_language, extra_http_headers={"Accept-Language": browser_language}
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/console/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]:not([name=language])")
    page.wait_for_url(f"{live_server.url}/console/")
    return page


def _pages(live_server, conversation) -> dict[str, str]:
    return {
        "list": "/console/",
        "thread": f"/console/c/{conversation.pk}/",
        "simulator": "/console/simulator/",
        "admin": "/admin/",
        "admin-conversations": "/admin/conversations/conversation/",
        "admin-conversation": f"/admin/conversations/conversation/{conversation.pk}/change/",
        "admin-message": f"/admin/conversations/message/{conversation.messages.get(text='Ecco il modulo').pk}/change/",
        "admin-bot-configuration": "/admin/conversations/botconfig/add/",
        "admin-messages": "/admin/conversations/message/",
        "admin-channel": "/admin/conversations/channel/add/",
        "admin-profile": f"/admin/profiles/clientprofile/{conversation.profile_id}/change/",
        "admin-webhook-events": "/admin/webhooks/webhookevent/",
        "admin-templates": "/admin/conversations/messagetemplate/",
        "admin-alerts": "/admin/conversations/alert/",
        "admin-quick-reply": "/admin/conversations/quickreply/add/",
        "admin-user": "/admin/auth/user/add/",
        "admin-access-attempts": "/admin/axes/accessattempt/",
    }


def _visit(page, live_server, name: str, path: str, language: str) -> str:
    page.goto(f"{live_server.url}{path}")
    page.wait_for_load_state("networkidle")
    screenshot(page, f"i18n-{language}-{name}.png", full_page=True)
    # What is folded away is read too: menus, earlier versions, admin's collapsed sections.
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
    return page.evaluate("() => document.body.innerText")


def test_an_italian_member_of_staff_reads_no_english_string_of_the_catalogue(desk, live_server, browser_context):
    page = _log_in(browser_context, live_server, language="it", browser_language="en-US")
    english = {_fixed_part(msgid) for msgid, _ in _catalogue()}
    seen = {}
    for name, path in _pages(live_server, desk).items():
        text = _visit(page, live_server, name, path, "it")
        seen[name] = text
        found = _found(english, text)
        assert found == [], f"English on the Italian {name} page: " + " | ".join(
            text[max(0, text.find(f) - 60) : text.find(f) + 60] for f in found
        )
    # The stored reasons are there, in Italian.
    assert "Il cliente ha chiesto di parlare con una persona." in seen["thread"]
    assert "Sono passate più di 24 ore dall'ultimo messaggio del cliente" in seen["thread"]
    assert "Nuovo tentativo: Non è stato possibile consegnare il messaggio" in seen["thread"]
    assert "Non consegnato, tentativi fatti: 3" in seen["thread"]
    assert "non è stato conservato; il limite in KB: 5,120" in seen["thread"]
    assert "Il cliente ha chiesto di parlare con una persona." in seen["admin-conversation"]
    assert "Simulatore" in seen["simulator"] and "Prendi in carico" in seen["list"] + seen["thread"]


def test_an_english_member_of_staff_reads_the_english_strings(desk, live_server, browser_context):
    page = _log_in(browser_context, live_server, language="en", browser_language="it-IT")
    italian = {_fixed_part(msgstr) for _, msgstr in _catalogue() if " " in _fixed_part(msgstr)}
    seen = {}
    for name, path in _pages(live_server, desk).items():
        text = _visit(page, live_server, name, path, "en")
        seen[name] = text
        assert _found(italian, text) == [], f"Italian on the English {name} page"
    assert "The customer asked for a person." in seen["thread"]
    assert "Not delivered, attempts made: 3" in seen["thread"]
    assert "Retrying: The message could not be delivered" in seen["thread"]
    assert "Simulator" in seen["simulator"] and "Knowledge and data to collect" in seen["admin-bot-configuration"]
