"""A peer group as a newcomer meets it, in real headless Chromium against ``haven serve
--demo``: sign up, find the group in the finder, read and accept its code of conduct, pick
a pseudonym, wait in the lobby; the demo facilitator opens the meeting and admits them; both
land in the same end-to-end encrypted room (equal security codes), and the facilitator's
page shows the member's pseudonym, never their account's name."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.browser.chromium import CHROMIUM
from tests.browser.test_session_page import AXE, media_args
from tests.voice_support import tone, write_wav
from web.demo import DEMO_GROUP_1

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REAL_NAME, USERNAME, PSEUDONYM = "Casey Realname", "casey-real", "Heron"
PASSWORD = "a long enough password"
SHOTS = Path("/tmp/haven-group-shots")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    wav = write_wav(tmp_path_factory.mktemp("mic") / "tone.wav", tone(700.0, 30))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=media_args(wav))
        yield b
        b.close()


def wait_until(predicate, timeout=40.0, step=0.25):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def axe_problems(page, label: str, found: list) -> None:
    """Run axe-core on the page; keep its serious and critical findings."""
    page.evaluate(AXE.read_text())
    violations = page.evaluate(
        "async () => (await axe.run(document)).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    if bad:
        found.append((label, bad))
    # No sideways scrolling on a phone, nor on a laptop.
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > page.viewport_size["width"]:
        found.append((label, f"scrolls sideways: {width}px"))


def test_newcomer_joins_a_group_and_meets_the_facilitator_in_one_encrypted_room(
        browser, live_server):
    base = live_server.base_url
    m_ctx = browser.new_context(viewport={"width": 390, "height": 844})
    f_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    try:
        member = m_ctx.new_page()
        member.on("pageerror", lambda e: errors.append(f"member: {e}"))
        # A new person signs up, as anyone can on the demo.
        member.goto(base + "/signup")
        member.fill("#username", USERNAME)
        member.fill("#display_name", REAL_NAME)
        member.fill("#password", PASSWORD)
        member.get_by_role("button", name=re.compile("Sign up|Create", re.I)).click()
        member.wait_for_url(base + "/")

        # The finder, from the main navigation (folded behind "Menu" on a phone); by topic.
        nav = member.get_by_role("navigation", name="Main")
        nav.get_by_role("button", name="Menu").click()
        nav.get_by_role("link", name="Groups").click()
        member.wait_for_url(re.compile(r".*/groups$"))
        member.get_by_label("Topic").select_option("anxiety")
        member.get_by_role("button", name="Show groups").click()
        assert "1 group found" in member.locator("#results-count").inner_text()
        a11y: list = []
        axe_problems(member, "finder", a11y)
        member.get_by_role("link", name=DEMO_GROUP_1, exact=True).click()

        # The group page: the code of conduct, a pseudonym, acceptance.
        conduct = member.get_by_role("region", name="Code of conduct")
        assert "What is said here stays here" in conduct.inner_text()
        axe_problems(member, "group page", a11y)
        member.get_by_label("Your name in this group").fill(PSEUDONYM)
        member.get_by_label("I have read the code of conduct and I accept it").check()
        member.get_by_role("button", name="Join the group").click()
        member.wait_for_url(re.compile(r".*/groups/\d+\?done=joined$"))
        assert "Welcome" in member.locator("[role=status]").first.inner_text()
        group_path = re.search(r"/groups/\d+", member.url).group(0)

        # The demo moved a meeting to start within the hour: its lobby is open.
        member.get_by_role("button", name="Go to the lobby").first.click()
        member.wait_for_url(re.compile(r".*/meetings/\d{8}T\d{4}$"))
        lobby_status = member.locator("#meeting-status")
        assert lobby_status.get_attribute("aria-live") == "polite"
        assert "has not opened it yet" in lobby_status.inner_text()
        assert "The meeting starts" in lobby_status.inner_text()
        axe_problems(member, "lobby", a11y)
        SHOTS.mkdir(exist_ok=True)
        member.screenshot(path=str(SHOTS / "lobby-390.png"), full_page=True)

        # The facilitator logs in, opens the meeting and admits the newcomer.
        fac = f_ctx.new_page()
        fac.on("pageerror", lambda e: errors.append(f"facilitator: {e}"))
        fac.goto(base + "/login")
        fac.get_by_label("Username").fill("facilitator")
        fac.get_by_label("Password").fill(live_server.logins["facilitator"])
        fac.get_by_role("button", name="Log in").click()
        fac.wait_for_url(base + "/")
        fac.goto(base + "/groups/mine")
        fac.get_by_role("link", name="Run this meeting").first.click()
        fac.get_by_role("button", name="Open the meeting").click()
        admit = fac.get_by_role("button", name=f"Admit {PSEUDONYM}")
        admit.wait_for(timeout=20_000)
        axe_problems(fac, "running the meeting", a11y)
        fac.screenshot(path=str(SHOTS / "run-1280.png"), full_page=True)
        admit.click()
        with f_ctx.expect_page() as new_tab:
            fac.get_by_role("button", name=re.compile("Enter the room")).click()
        room_f = new_tab.value
        room_f.on("pageerror", lambda e: errors.append(f"facilitator room: {e}"))

        # The member's lobby notices the admission and goes to the same room.
        member.wait_for_url(re.compile(r".*/s/r-[0-9a-f]{16}#.+"), timeout=30_000)
        room_id = re.search(r"/s/(r-[0-9a-f]{16})", member.url).group(1)
        room_f.wait_for_url(re.compile(rf".*/s/{room_id}#.+"), timeout=30_000)
        for page in (member, room_f):
            page.wait_for_selector("html[data-session-state='lobby']", state="attached",
                                   timeout=30_000)
            page.check("#audio-only")
            page.click("#join")
        for page in (member, room_f):
            page.wait_for_selector("html[data-session-state='in-room']", state="attached",
                                   timeout=40_000)

        # Both see each other and the same security code: one encrypted room.
        people = room_f.locator("ul#people li[data-participant]")
        wait_until(lambda: people.count() == 2)
        wait_until(lambda: member.locator("ul#people li[data-participant]").count() == 2)

        def code(page):
            return page.text_content("#security-code").strip()

        wait_until(lambda: code(member) == code(room_f) and re.search(r"\d", code(member)))
        listed = " | ".join(people.all_inner_texts())
        assert PSEUDONYM in listed
        for secret in (REAL_NAME, USERNAME):
            assert secret not in listed
            assert secret not in room_f.locator("body").inner_text()
            assert secret not in room_f.content()
        # And the member sees the facilitator under their group name, not the account's.
        seen = " | ".join(member.locator("ul#people li[data-participant]").all_inner_texts())
        assert "Sky (facilitator)" in seen and "Morgan Facilitator" not in seen

        # The facilitator's dashboard records the attendance; ending closes the room.
        fac.goto(base + group_path + "/manage#attendance")
        assert "took part" in fac.locator("#attendance").inner_text()
        axe_problems(fac, "dashboard", a11y)
        fac.goto(base + "/admin/groups")  # not for facilitators: a readable refusal
        assert "People" not in fac.locator("nav").inner_text()
        fac.goto(base + "/groups/mine")
        fac.get_by_role("link", name="Run this meeting").first.click()
        fac.get_by_role("button", name="End the meeting for everyone").click()
        fac.wait_for_url(re.compile(r".*/manage\?done=ended$"))
        member.wait_for_selector("html[data-session-state='ended']", state="attached",
                                 timeout=20_000)
        assert errors == []
        assert a11y == []
    finally:
        m_ctx.close()
        f_ctx.close()
