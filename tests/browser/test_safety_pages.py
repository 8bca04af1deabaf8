"""Safety in real headless Chromium against ``haven serve --demo``: a member presses "Get
help now" (by keyboard) and sees their account country's crisis lines, switches country
while offline, and privately lets the facilitator know they are struggling; the facilitator's
safety dashboard shows the member's pseudonym, and another member's pages show nothing. A
visitor with a German browser sees the German line. Screenshots with
HAVEN_WRITE_SCREENSHOTS=1."""

from __future__ import annotations

import pytest

from tests.browser.chromium import SCREENSHOT_DIR
from tests.browser.conftest import write_screenshots
from tests.browser.layout import assert_no_horizontal_overflow
from tests.browser.test_site_pages import api, login
from web.demo import DEMO_GROUP_1

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MESSAGE = "Rough week, could we talk after"


def shoot(page, name: str) -> None:
    if write_screenshots():
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"safety-{name}.png"))


def group_id(page) -> int:
    mine = api(page, "GET", "/api/groups/mine")["body"]["groups"]
    return next(g["id"] for g in mine if g["name"] == DEMO_GROUP_1)


def open_help_by_keyboard(page) -> None:
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")  # Haven
    page.keyboard.press("Tab")  # Get help now
    focused = page.evaluate("document.activeElement.textContent")
    assert "Get help now" in focused, focused
    page.keyboard.press("Enter")
    page.wait_for_selector("#help-dialog[open]")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_member_gets_help_and_alerts_the_facilitator(chromium, live_server, viewport):
    base = live_server.base_url
    size = "desktop" if viewport is DESKTOP else "phone"
    member_ctx = chromium.new_context(viewport=viewport, locale="en-US")
    fac_ctx = chromium.new_context(viewport=viewport)
    other_ctx = chromium.new_context(viewport=viewport)
    try:
        member = login(member_ctx, base, "member", live_server.logins["member"])
        errors: list[str] = []
        member.on("pageerror", lambda e: errors.append(str(e)))
        assert api(member, "PUT", "/api/me/safety", {"country": "GB"})["status"] == 200
        gid = group_id(member)
        member.goto(f"{base}/groups/{gid}")
        open_help_by_keyboard(member)
        dialog = member.locator("#help-dialog")
        text = dialog.inner_text()
        assert "Samaritans" in text and "116 123" in text and "999" in text, text
        assert member.locator("#help-country").input_value() == "GB"
        assert_no_horizontal_overflow(member, f"help dialog {size}")
        shoot(member, f"help-dialog-{size}")
        # Offline, the picker still works: the data is in the page.
        member_ctx.set_offline(True)
        member.select_option("#help-country", "AU")
        assert "13 11 14" in dialog.inner_text()
        member_ctx.set_offline(False)
        member.keyboard.press("Escape")
        assert not dialog.is_visible()

        # The private alert, from the help page.
        member.goto(f"{base}/help")
        member.fill(f"#tell-{gid}", MESSAGE)
        member.get_by_role("button", name="Let the facilitator of").first.click()
        member.wait_for_selector("#alert-sent")
        assert not errors, errors

        fac = login(fac_ctx, base, "facilitator", live_server.logins["facilitator"])
        fac.goto(f"{base}/groups/{gid}/safety")
        alerts = fac.locator("#alerts").inner_text()
        assert MESSAGE in alerts and "asked for support" in alerts
        member_pseudonym = api(member, "GET", f"/api/groups/{gid}")["body"]["group"][
            "membership"]["pseudonym"]
        assert member_pseudonym in alerts
        assert_no_horizontal_overflow(fac, f"safety dashboard {size}")
        shoot(fac, f"dashboard-{size}")

        other = login(other_ctx, base, "member2", live_server.logins["member2"])
        for path in (f"/groups/{gid}", "/groups/mine", "/help"):
            other.goto(base + path)
            assert MESSAGE not in other.content(), path
        assert api(other, "GET", f"/api/groups/{gid}/safety")["status"] == 403
    finally:
        for ctx in (member_ctx, fac_ctx, other_ctx):
            ctx.close()


def test_visitor_sees_the_line_of_their_browser_language(chromium, live_server):
    ctx = chromium.new_context(viewport=DESKTOP, locale="de-DE")
    try:
        page = ctx.new_page()
        page.goto(live_server.base_url + "/login")
        page.get_by_role("link", name="Get help now").click()
        page.wait_for_selector("#help-dialog[open]")
        text = page.locator("#help-dialog").inner_text()
        assert "TelefonSeelsorge" in text and "0800 111 0 111" in text and "112" in text
    finally:
        ctx.close()
