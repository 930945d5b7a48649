"""Icons are heroicons' inline SVGs: no emoji stands in for an icon in a template (customers'
emoji in messages are data, not templates), and every page has the favicon."""

import re
from pathlib import Path

import pytest
from django.conf import settings

# Emoji and pictographs (U+1F000–1FAFF), miscellaneous symbols and dingbats (U+2600–27BF: ☺ ✓ ✎ ➤),
# arrows (U+2190–21FF: ← ↺ ↩) and technical symbols (U+2300–23FF: ⌛ ⏳ ⏱).
ICON_CHARACTERS = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2190-\u21ff\u2300-\u23ff]")
# Characters allowed where the list below says why.
ALLOWED: dict[str, str] = {
    "→": "the bot configuration diff's title and breadcrumb read 'v1 → v2' (text, not an icon)",
}
ROOT = Path(settings.BASE_DIR)


def templates() -> list[Path]:
    found = [p for p in ROOT.glob("templates/**/*.html")]
    found += [p for p in ROOT.glob("*/templates/**/*.html") if ".venv" not in p.parts]
    return sorted(found)


def test_no_template_uses_an_emoji_as_an_icon():
    assert len(templates()) >= 8
    offending = []
    for path in templates():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for char in ICON_CHARACTERS.findall(line):
                if char not in ALLOWED:
                    offending.append(f"{path.relative_to(ROOT)}:{number}: {char!r}")
    assert not offending, "use {% heroicon_micro … %} with a label instead:\n" + "\n".join(offending)


def test_the_check_finds_an_emoji():
    assert ICON_CHARACTERS.findall("🤖 Bot ⏳ ✓ ← ⌛") == ["🤖", "⏳", "✓", "←", "⌛"]


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_svg_favicon_that_every_page_links(client, admin_client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and b"<svg" in b"".join(svg.streaming_content)
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert link in client.get("/console/login/").content.decode()
    assert link in admin_client.get("/admin/").content.decode()
    assert link in admin_client.get("/admin/webhooks/webhookevent/").content.decode()
    assert link in admin_client.get("/console/simulator/").content.decode()
