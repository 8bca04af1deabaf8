"""A moderated group meeting in real headless Chromium with the shipped defaults: `haven
serve --demo` with no ICE flags, browsers without --allow-loopback-in-peer-connection, in a
network namespace like a laptop. The demo facilitator's page and two members' pages:

* hands are raised (one with the H shortcut) and lowered, in order, and the facilitator
  lowers one;
* the talking piece is passed, and the audio energy each page measures follows the holder
  (the SFU drops everyone else's packets);
* mute all, then allow one;
* the removed member's page says so.

The meeting is opened and the members let in through the groups library, as the lobby
pages do; roles come from the group's data. Screenshots go to docs/screenshots/ when
HAVEN_WRITE_SCREENSHOTS=1."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from groups import directory, meetings, membership
from tests.browser.chromium import CHROMIUM
from tests.browser.conftest import write_screenshots
from tests.net.browser import SessionTab, launch_in
from tests.net.lab import ROOT, Lab, one_machine, unavailable
from tests.net.services import HAVEN, wait_until
from tests.voice_support import syllables, write_wav
from therapy import accounts, rooms
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.storage import open_database
from web.demo import refresh_demo_meeting

pytestmark = [pytest.mark.browser, pytest.mark.net, pytest.mark.slow]

BASE = "http://127.0.0.1:8080"
LOUD, QUIET = 0.004, 0.0015  # energy levels the pages report for a voice / for nothing
SHOTS = ROOT / "docs" / "screenshots"


@contextlib.contextmanager
def demo_meeting(tmp_path_factory, name: str, *, cofacilitator: str | None = None):
    """`haven serve --demo` in a namespace with the demo group's meeting open: the
    facilitator Sky (host link), Juniper and Wren let in, and with ``cofacilitator`` a
    co-facilitator account under that pseudonym. Yields (machine, folder, links by name)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    folder = tmp_path_factory.mktemp(name)
    data = folder / "haven-data"
    with Lab() as lab:
        m = one_machine(lab)
        server = m.popen([*HAVEN, "serve", "--demo", "--data-dir", str(data)],
                         log=folder / "serve.log")
        m.wait_listening(8080, server, what="haven serve --demo")
        db = open_database(data / "haven.db")
        try:
            sys = Actor.system()
            key = refresh_demo_meeting(db)
            fac = accounts.find_user(db, "facilitator")
            gid = db.execute("SELECT group_id FROM group_members WHERE user_id = ?",
                             [fac.id]).fetchone()[0]
            co = None
            if cofacilitator is not None:
                admin = accounts.find_user(db, "admin")
                co = accounts.create_user(db, "cofacilitator", "correct horse battery",
                                          Role.MODERATOR, "Casey Co", "UTC")
                directory.set_facilitators(db, admin, gid, fac.id, [co.id], actor=sys)
                membership.update_self(db, co, gid, pseudonym=cofacilitator, actor=sys)
            room_id, host_token = meetings.open_meeting(db, fac, gid, key, actor=sys)
            links = {"Sky": rooms.join_url(BASE, room_id, host_token)}
            if co is not None:
                links[cofacilitator] = rooms.join_url(BASE, *meetings.join_link(
                    db, co, gid, key, actor=sys))
            for username, pseudonym in (("member", "Juniper"), ("member2", "Wren")):
                user = accounts.find_user(db, username)
                meetings.arrive(db, user, gid, key, actor=sys)
                member_id = db.execute("SELECT id FROM group_members WHERE group_id = ? AND "
                                       "user_id = ?", [gid, user.id]).fetchone()[0]
                meetings.admit(db, fac, gid, key, member_id, actor=sys)
                links[pseudonym] = rooms.join_url(BASE, *meetings.join_link(
                    db, user, gid, key, actor=sys))
        finally:
            db.close()
        yield m, folder, links


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    with demo_meeting(tmp_path_factory, "group-meeting") as world:
        yield world


def pid_of(tab) -> str:
    return tab.page.evaluate("window.havenSession.state.participantId")


def energy(tab) -> dict:
    return tab.page.evaluate("window.havenSession.remoteEnergy()")


def queue(tab) -> list[str]:
    return [t.split(" (")[0] for t in
            tab.page.locator("#hand-queue-list li .name").all_inner_texts()]


def announced(tab) -> str:
    return " | ".join(t["text"] for t in tab.page.evaluate("window.havenSession.toasts"))


def people_drawer(tab) -> None:
    if tab.page.locator("#drawer-people").is_hidden():
        tab.page.click("#people-button")
    tab.page.wait_for_selector("#drawer-people", state="visible")


def test_facilitator_and_two_members_run_a_moderated_meeting(meeting):
    from playwright.sync_api import sync_playwright

    m, folder, links = meeting
    wav = write_wav(folder / "voice.wav", syllables(600.0, 60))
    with sync_playwright() as p:
        browser = launch_in(p, m, folder, wav)
        tabs = {}
        try:
            for who in ("Sky", "Juniper", "Wren"):
                tabs[who] = SessionTab(browser, links[who])
                tabs[who].join(who)
            sky, jun, wren = tabs["Sky"], tabs["Juniper"], tabs["Wren"]
            wait_until(lambda: all(t.people() == 3 for t in tabs.values()), 60, what="3 here")
            pid = {who: pid_of(t) for who, t in tabs.items()}
            for t in tabs.values():
                t.page.wait_for_selector("#hand", state="visible")
            # the H shortcut is in the help, now that this is a group meeting
            assert "Raise or lower your hand" in jun.page.locator("#shortcut-list").inner_text()
            # everyone hears everyone at first
            wait_until(lambda: all(energy(sky).get(pid[w], 0) > LOUD for w in ("Juniper", "Wren")),
                       45, what="the facilitator hearing both members")

            # hands, in order of raising: Juniper with H, then Wren with the button
            jun.page.locator("body").press("h")
            wait_until(lambda: queue(sky) == ["Juniper"], what="Juniper's hand")
            wren.page.click("#hand")
            wait_until(lambda: queue(sky) == ["Juniper", "Wren"], what="both hands in order")
            assert queue(jun) == ["You", "Wren"] and queue(wren) == ["Juniper", "You"]
            wait_until(lambda: "Wren raised their hand" in announced(sky), what="announcement")
            assert jun.page.get_attribute("#hand", "aria-pressed") == "true"
            jun.page.click("#hand")  # lowers her own
            wait_until(lambda: queue(sky) == ["Wren"], what="Juniper lowered her hand")
            people_drawer(sky)
            sky.page.get_by_role("button", name="Lower Wren's hand").click()
            wait_until(lambda: queue(wren) == [] and sky.page.locator("#hand-queue").is_hidden(),
                       what="all hands down")

            # the talking piece: on, to the next hand (Juniper), then to Wren
            sky.page.get_by_role("button", name="Talking piece: off").click()
            sky.page.get_by_role("button", name="Talking piece: on").wait_for()
            jun.page.click("#hand")
            wait_until(lambda: queue(sky) == ["Juniper"], what="Juniper asks for the piece")
            sky.page.get_by_role("button", name="Give the piece to the next hand").click()
            wait_until(lambda: "You hold the talking piece" in jun.page.inner_text("#piece-status"),
                       what="Juniper holds the piece")
            wait_until(lambda: energy(sky).get(pid["Juniper"], 0) > LOUD
                       and energy(sky).get(pid["Wren"], 1) < QUIET
                       and energy(wren).get(pid["Juniper"], 0) > LOUD,
                       30, what="only the holder heard")
            assert "Juniper holds the talking piece" in wren.page.inner_text("#piece-status")
            assert jun.page.is_visible("#piece-back") and not wren.page.is_visible("#piece-back")
            if write_screenshots():
                sky.page.set_viewport_size({"width": 1280, "height": 800})
                sky.page.screenshot(path=str(SHOTS / "group-room-facilitator-1280.png"))
                jun.page.set_viewport_size({"width": 390, "height": 844})
                jun.page.screenshot(path=str(SHOTS / "group-room-holder-390.png"))
            sky.page.get_by_role("button", name="Give Wren the piece").first.click()
            wait_until(lambda: energy(sky).get(pid["Wren"], 0) > LOUD
                       and energy(sky).get(pid["Juniper"], 1) < QUIET
                       and energy(jun).get(pid["Wren"], 0) > LOUD,
                       30, what="the energy following the piece to Wren")
            wait_until(lambda: "Wren now holds the talking piece" in announced(jun),
                       what="the pass announced")
            sky.page.get_by_role("button", name="Talking piece: on").click()
            sky.page.get_by_role("button", name="Talking piece: off").wait_for()

            # mute all, then allow one
            sky.page.get_by_role("button", name="Mute all members").click()
            for t in (jun, wren):
                t.page.wait_for_selector("#ask-to-speak", state="visible")
            wait_until(lambda: all(energy(sky).get(pid[w], 1) < QUIET for w in ("Juniper", "Wren")),
                       30, what="both members silent")
            assert "muted everyone" in announced(jun)
            if write_screenshots():
                wren.page.set_viewport_size({"width": 390, "height": 844})
                wren.page.screenshot(path=str(SHOTS / "group-room-muted-390.png"))
            jun.page.click("#ask-to-speak")
            wait_until(lambda: queue(sky) == ["Juniper"], what="Juniper asks to speak")
            assert "asks to speak" in sky.page.inner_text("#hand-queue-list")
            sky.page.get_by_role("button", name="Allow Juniper to speak").click()
            wait_until(lambda: energy(sky).get(pid["Juniper"], 0) > LOUD
                       and energy(sky).get(pid["Wren"], 1) < QUIET,
                       30, what="Juniper allowed, Wren still muted")
            assert "let you speak again" in announced(jun)

            # a pause: members see the pause card and nobody but the facilitators is heard;
            # resuming brings back the mutes as they were (Juniper heard, Wren still muted)
            sky.page.get_by_role("button", name="Pause the meeting").click()
            jun.page.wait_for_selector("#pause-card", state="visible")
            assert sky.page.locator("#pause-card").is_hidden()
            wait_until(lambda: energy(sky).get(pid["Juniper"], 1) < QUIET, 30,
                       what="Juniper held by the pause")
            if write_screenshots():
                jun.page.set_viewport_size({"width": 390, "height": 844})
                jun.page.screenshot(path=str(SHOTS / "group-room-paused-390.png"))
            sky.page.get_by_role("button", name="Resume the meeting").click()
            jun.page.wait_for_selector("#pause-card", state="hidden")
            wait_until(lambda: energy(sky).get(pid["Juniper"], 0) > LOUD
                       and energy(sky).get(pid["Wren"], 1) < QUIET,
                       30, what="after the pause, the mutes as before")

            # remove: the removed page says so clearly
            sky.page.get_by_text("More for Wren").click()
            sky.page.get_by_role("button", name="Remove Wren").click()
            sky.page.locator("dialog.confirm-dialog [data-confirm-yes]").click()
            wren.page.wait_for_selector("html[data-session-state='ended']", state="attached",
                                        timeout=20_000)
            assert "A facilitator removed you from this meeting" in wren.page.inner_text(
                "#ended-reason")
            wait_until(lambda: sky.people() == 2 and jun.people() == 2, what="two left")
            errors = [e for t in tabs.values() for e in t.errors]
            assert not errors, errors
        finally:
            for t in tabs.values():
                t.close()
            browser.close()
