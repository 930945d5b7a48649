"""The pages fit a 1,366 px wide laptop screen (and the list's filter chips a phone): no page-wide
horizontal scroll on the console's list and thread, the bot configuration's change page (long
prompts in its history wrap) and the webhook events list. Screenshots: artifacts/screenshots/layout-*.png."""

import pytest
from django.contrib.auth.models import Group

from conversations.models import BotConfig, Owner
from conversations.roles import ADMINS_GROUP, role_groups_ensure
from conversations.services.botconfig import bot_config_save
from tests.browser import BROWSER_TEST, screenshot
from tests.conversations.factories import ConversationFactory, MessageFactory, UserFactory
from webhooks.models import WebhookEvent

pytestmark = BROWSER_TEST

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
# A prompt line with no space to break at (a pasted URL, a JSON blob): the worst case for wrapping.
UNBROKEN = "https://example.com/catalogo?" + "&".join(f"articolo{i}=disponibile" for i in range(120))


def overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.fixture
def admin_user(transactional_db):
    role_groups_ensure()
    user = UserFactory(username="alice-admin", first_name="Alice")
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    return user


@pytest.fixture
def open_page(browser_context, session_login, admin_user):
    def open_(viewport):
        context = browser_context(viewport=viewport)
        session_login(context, admin_user)
        return context.new_page()

    return open_


def test_the_console_list_and_thread_fit_a_laptop_and_the_chips_scroll_on_a_phone(open_page, live_server, channel):
    conversation = ConversationFactory(channel=channel, profile__profile_name="Giulia Russo-Bianchi Marchetti", owner=Owner.HUMAN)
    MessageFactory(conversation=conversation, text="Buongiorno, vorrei sapere dove si trova il mio ordine " + UNBROKEN[:200])
    MessageFactory(conversation=conversation, direction="out", author="bot", status="read", text="Controllo subito!")
    for i in range(8):
        ConversationFactory(channel=channel, profile__profile_name=f"Cliente {i}", last_message_preview="Grazie!")

    page = open_page(LAPTOP)
    page.goto(f"{live_server.url}/console/")
    assert overflow(page) <= 0
    screenshot(page, "layout-console-list-1366.png")
    page.goto(f"{live_server.url}/console/c/{conversation.pk}/")
    page.wait_for_selector("#list-body .conv")
    assert overflow(page) <= 0
    screenshot(page, "layout-console-thread-1366.png")
    chips = page.locator(".chips")
    # Every chip is inside the sidebar, or reachable by scrolling the chip row (not the page).
    assert chips.evaluate("el => el.getBoundingClientRect().right <= el.closest('.sidebar').getBoundingClientRect().right + 0.5")

    phone = open_page(PHONE)
    phone.goto(f"{live_server.url}/console/")
    assert overflow(phone) <= 0
    last = phone.locator(".chip").last
    last.scroll_into_view_if_needed()
    last.click()
    assert last.locator("input").is_checked() and overflow(phone) <= 0
    screenshot(phone, "layout-console-list-phone.png")


def test_the_bot_configuration_page_wraps_long_prompts_and_shows_a_diff(open_page, live_server, admin_user):
    config = bot_config_save(config=BotConfig(name="Negozio", instructions="Sei l'assistente del negozio.\n" + UNBROKEN)).config
    config.instructions = "Sei l'assistente del negozio.\nRispondi sempre in italiano.\n" + UNBROKEN
    bot_config_save(config=config, user=admin_user)

    page = open_page(LAPTOP)
    page.goto(f"{live_server.url}/admin/conversations/botconfig/{config.pk}/change/")
    page.locator(".field-history details").first.evaluate("el => el.open = true")
    assert overflow(page) <= 0
    # Nor is the prompt cut off or scrolled inside its box: it wraps, within the history's column.
    wider = "el => el.scrollWidth - el.clientWidth"
    assert page.locator(".field-history .readonly").evaluate(wider) <= 0
    assert max(page.locator(".field-history pre").evaluate_all(f"els => els.map({wider})")) <= 0
    screenshot(page, "layout-botconfig-1366.png", full_page=True)

    page.click("[data-action=compare]")
    page.wait_for_url(f"**/admin/conversations/botconfig/{config.pk}/diff/?**")
    added = page.locator('[data-setting="instructions"] ins')
    assert added.count() == 1 and added.inner_text() == "Rispondi sempre in italiano."
    assert overflow(page) <= 0
    screenshot(page, "layout-botconfig-diff-1366.png", full_page=True)


def test_the_webhook_events_list_fits_a_laptop(open_page, live_server, channel):
    for i in range(5):
        WebhookEvent.objects.create(
            channel=channel, body='{"object": "whatsapp_business_account", "entry": []}', outcome="failed", signature_valid=True,
            detail=f"parse error {i}: " + UNBROKEN,
        )  # fmt: skip
    page = open_page(LAPTOP)
    page.goto(f"{live_server.url}/admin/webhooks/webhookevent/")
    assert page.locator("#result_list tbody tr").count() == 5
    assert overflow(page) <= 0
    # Every column in view: the results box (which scrolls by itself) needs no scrolling either.
    assert page.locator("#changelist .results").evaluate("el => el.scrollWidth - el.clientWidth") <= 0
    assert page.locator("#result_list td.field-short_detail span").first.get_attribute("title").endswith(UNBROKEN)
    screenshot(page, "layout-webhook-events-1366.png")
