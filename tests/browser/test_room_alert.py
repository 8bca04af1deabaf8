"""The private alert from inside a group meeting, in real headless Chromium with the shipped
defaults (`haven serve --demo` with no ICE flags, browsers without
--allow-loopback-in-peer-connection, in a network namespace like a laptop), as in
test_group_meeting.py. Three logged-in pages: the facilitator Sky, the members Juniper and
Wren. Every page records the signaling messages it receives (WebSocket wrapped by an init
script before the page loads).

* Juniper presses "Get help now" in the room and sees her account country's line (GB), sends
  the private alert with a few words from the dialog, and is told the facilitators know;
* Sky's page shows it within 2 s (the DOM polled with a deadline), in the role=alert panel,
  and Sky marks it followed up (the safety API's status update);
* Wren's page shows nothing: not in the DOM, and none of the signaling messages her page
  received carries the alert's words, its id or an alert type;
* Sky flags a concern about Wren from her per-person controls: Sky's panel shows it, Wren's
  page again receives nothing;
* everyone sees the notes indicator ("No notes are being taken").

Screenshots (HAVEN_WRITE_SCREENSHOTS=1): docs/screenshots/room-alert-*.png."""

from __future__ import annotations

import json
import time

import pytest

from tests.browser.conftest import write_screenshots
from tests.browser.test_group_meeting import meeting  # noqa: F401 (a fixture: the demo meeting)
from tests.browser.test_site_pages import api
from tests.net.browser import KEEP_PEER_CONNECTIONS, launch_in
from tests.net.lab import ROOT
from tests.net.services import wait_until
from tests.voice_support import syllables, write_wav
from therapy import accounts
from therapy.storage import open_database

pytestmark = [pytest.mark.browser, pytest.mark.net, pytest.mark.slow]

BASE = "http://127.0.0.1:8080"  # (the demo server in the lab namespace)
SHOTS = ROOT / "docs" / "screenshots"
WORDS = "Rough night, the panic is back"
CONCERN = "Quiet tonight, check in after"
ALERT_TYPES = ("help_alert", "help_alert_sent", "safety_alert", "concern_flag")

# Every signaling message the page receives, and its sockets (to send a ping), recorded
# before any page script runs.
RECORD_WEBSOCKET = """
(() => {
  const Native = window.WebSocket;
  const received = (window.__wsReceived = []);
  const sockets = (window.__wsSockets = []);
  class Recording extends Native {
    constructor(...args) {
      super(...args);
      sockets.push(this);
      this.addEventListener("message", (e) => { received.push(String(e.data)); });
    }
  }
  window.WebSocket = Recording;
})();
"""


USERNAMES = {"Sky": "facilitator", "Juniper": "member", "Wren": "member2"}


@pytest.fixture(scope="module")
def alert_meeting(meeting):  # noqa: F811 (test_group_meeting's fixture)
    """test_group_meeting's demo meeting (Sky facilitates, Juniper and Wren admitted), with
    what logging in needs: the demo passwords, and the group."""
    m, folder, links = meeting
    data = folder / "haven-data"
    logins = dict(line.split(" ", 1) for line in
                  (data / "demo-logins.txt").read_text().splitlines()
                  if line and not line.startswith("#") and " " in line)
    db = open_database(data / "haven.db")
    try:
        fac = accounts.find_user(db, "facilitator")
        gid = db.execute("SELECT group_id FROM group_members WHERE user_id = ?",
                         [fac.id]).fetchone()[0]
    finally:
        db.close()
    people = {who: (USERNAMES[who], url) for who, url in links.items()}
    return m, folder, data, gid, people, logins


class Tab:
    """A logged-in person's session page that records its signaling messages."""

    def __init__(self, browser, username: str, password: str, url: str, viewport: dict):
        self.context = browser.new_context(viewport=viewport, locale="en-US")
        self.context.add_init_script(KEEP_PEER_CONNECTIONS)
        self.context.add_init_script(RECORD_WEBSOCKET)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(BASE + "/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password.strip())
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(BASE + "/")
        self.url = url

    def join(self, name: str) -> None:
        self.page.goto(self.url)
        self.page.wait_for_selector("html[data-session-state='lobby']", state="attached",
                                    timeout=60_000)
        self.page.check("#audio-only")
        self.page.click("#join")
        self.page.wait_for_selector("html[data-session-state='in-room']", state="attached",
                                    timeout=60_000)

    def people(self) -> int:
        return self.page.locator("ul#people li[data-participant]").count()

    def received(self) -> list[dict]:
        return [json.loads(t) for t in self.page.evaluate("window.__wsReceived")]

    def settle(self) -> None:
        """Everything the server queued for this page before now has arrived (a pong)."""
        pongs = sum(m["type"] == "pong" for m in self.received())
        self.page.evaluate("""() => { const ws = window.__wsSockets.at(-1);
            ws.send(JSON.stringify({type: "ping"})); }""")
        wait_until(lambda: sum(m["type"] == "pong" for m in self.received()) > pongs, 15,
                   what="a pong")

    def close(self) -> None:
        self.context.close()


def keys_in(value) -> set[str]:
    out, stack = set(), [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out |= set(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def assert_nothing_about_alerts(tab: Tab, *words: str) -> None:
    for message in tab.received():
        text = json.dumps(message)
        assert message["type"] not in ALERT_TYPES, message
        assert not ({"alert_id", "pseudonym", "raised_by"} & keys_in(message)), message
        for w in words:
            assert w not in text, message
    assert tab.page.locator("#safety-panel").is_hidden()
    body = tab.page.inner_text("body")
    for w in words:
        assert w not in body


def shoot(tab: Tab, name: str, show: str | None = None) -> None:
    if not write_screenshots():
        return
    for size, vp in (("1280", {"width": 1280, "height": 800}),
                     ("390", {"width": 390, "height": 844})):
        tab.page.set_viewport_size(vp)
        if show:
            tab.page.locator(show).scroll_into_view_if_needed()
        time.sleep(0.3)
        tab.page.screenshot(path=str(SHOTS / f"room-alert-{name}-{size}.png"))
    tab.page.set_viewport_size({"width": 1100, "height": 800})


def test_a_member_privately_tells_the_facilitator_from_the_room(alert_meeting):
    from playwright.sync_api import sync_playwright

    m, folder, data, gid, links, logins = alert_meeting
    wav = write_wav(folder / "voice.wav", syllables(600.0, 30))
    with sync_playwright() as p:
        browser = launch_in(p, m, folder, wav)
        tabs: dict[str, Tab] = {}
        try:
            for who in ("Sky", "Juniper", "Wren"):
                username, url = links[who]
                tabs[who] = Tab(browser, username, logins[username], url,
                                {"width": 1100, "height": 800})
            sky, jun, wren = tabs["Sky"], tabs["Juniper"], tabs["Wren"]
            # Juniper's account says Great Britain (her browser says en-US)
            assert api(jun.page, "PUT", "/api/me/safety", {"country": "GB"})["status"] == 200
            for who, t in tabs.items():
                t.join(who)
            wait_until(lambda: all(t.people() == 3 for t in tabs.values()), 60, what="3 here")
            for t in tabs.values():  # the notes indicator, for everyone
                t.page.wait_for_selector("#notes-indicator", state="visible")
                assert t.page.inner_text("#notes-indicator") == "No notes are being taken"
                assert t.page.get_attribute("#notes-indicator", "aria-live") == "polite"

            # Juniper: Get help now, in the room, her country's line
            jun.page.locator("#room-corner [data-help-now]").click()
            jun.page.wait_for_selector("#help-dialog[open]")
            wait_until(lambda: "Samaritans" in jun.page.inner_text("#help-dialog"), 10,
                       what="the GB lines")
            text = jun.page.inner_text("#help-dialog")
            assert "116 123" in text and "999" in text, text
            assert jun.page.locator("#help-country").input_value() == "GB"
            assert jun.page.locator("#help-tell").is_visible()
            assert jun.page.locator("#help-alert-row").is_hidden()  # no link out of the room
            jun.page.fill("#help-tell-message", WORDS)
            sky.settle()
            jun.page.get_by_role("button", name="Let the facilitator know I'm struggling").click()

            # Sky's page shows it within 2 s (polled with a deadline)
            sky.page.wait_for_function(
                """(words) => { const p = document.getElementById("safety-panel");
                    return !p.hidden && p.innerText.includes("Juniper")
                      && p.innerText.includes(words); }""", arg=WORDS, timeout=2_000)
            wait_until(lambda: "Juniper let you know they are struggling" in sky.page.inner_text(
                "#safety-live"), 5, what="the alert announced")  # (the region is refilled)
            assert sky.page.get_attribute("#safety-live", "role") == "alert"
            alerts = [x for x in sky.received() if x["type"] == "safety_alert"]
            assert len(alerts) == 1 and alerts[0]["pseudonym"] == "Juniper"
            alert_id = alerts[0]["alert_id"]
            assert "Riley" not in json.dumps(alerts[0])  # never the account's name

            # Juniper is told, in the dialog, and the crisis lines stay in view
            jun.page.wait_for_selector("#help-tell-status[data-state='sent']", timeout=5_000)
            said = jun.page.inner_text("#help-tell-status")
            assert "facilitators have been told" in said, said
            assert jun.page.locator("#help-dialog .help-line").first.is_visible()
            shoot(jun, "member-sent", "#help-tell-status")
            shoot(sky, "facilitator-panel")

            # Wren: nothing, in the DOM or in any signaling message her page received
            wren.settle()
            assert_nothing_about_alerts(wren, WORDS, "Juniper let you know")
            assert all(x.get("type") != "safety_alert" for x in jun.received())

            # Sky: "More for Juniper" opens Juniper's controls; then "Mark followed up"
            sky.page.locator("#safety-list").get_by_role("button", name="More for Juniper").click()
            sky.page.wait_for_selector("#drawer-people", state="visible")
            assert sky.page.locator("li[data-participant] details.person-more[open]").count() == 1
            sky.page.locator("#drawer-people .drawer-close").click()
            sky.page.get_by_role("button", name="Mark followed up").click()
            sky.page.wait_for_selector(".safety-entry.followed", timeout=10_000)
            db = open_database(data / "haven.db")
            try:
                status = db.execute("SELECT status FROM safety_alerts WHERE id = ?",
                                    [alert_id]).fetchone()[0]
            finally:
                db.close()
            assert status == "handled"

            # Sky flags a concern about Wren from her per-person controls
            if sky.page.locator("#drawer-people").is_hidden():
                sky.page.click("#people-button")
            sky.page.get_by_text("More for Wren").click()
            sky.page.get_by_role("button", name="Flag a concern about Wren").click()
            sky.page.wait_for_selector("#concern-dialog[open]")
            sky.page.fill("#concern-note", CONCERN)
            sky.page.get_by_role("button", name="Flag the concern").click()
            wait_until(lambda: "concern flagged by" in sky.page.inner_text("#safety-panel"), 10,
                       what="the concern on Sky's panel")
            assert CONCERN in sky.page.inner_text("#safety-panel")
            wren.settle()
            jun.settle()
            assert_nothing_about_alerts(wren, WORDS, CONCERN)
            assert CONCERN not in json.dumps(jun.received())
            errors = [e for t in tabs.values() for e in t.errors]
            assert not errors, errors
        finally:
            for t in tabs.values():
                t.close()
            browser.close()
