"""A private side room (issue 13) in real headless Chromium with the shipped defaults (`haven
serve --demo`, no ICE flags, no --allow-loopback-in-peer-connection, in a network namespace):
the demo facilitator Sky, a co-facilitator Cedar and the members Juniper and Wren.

Sky invites Juniper from the people drawer; Juniper's page shows a calm prompt with the
focus on it; she steps out; Wren's page shows her (and Sky) "stepped out" with no reason and
hears neither, while Sky and Juniper hear each other under the side room's own keys;
Juniper returns with the button, and every page hears everyone again. Screenshots go to
docs/screenshots/ when HAVEN_WRITE_SCREENSHOTS=1."""

from __future__ import annotations

import pytest

from tests.browser.conftest import write_screenshots
from tests.browser.test_group_meeting import (
    LOUD,
    QUIET,
    SHOTS,
    announced,
    demo_meeting,
    energy,
    pid_of,
)
from tests.net.browser import SessionTab, launch_in
from tests.net.services import wait_until
from tests.voice_support import syllables, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.net, pytest.mark.slow]


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    with demo_meeting(tmp_path_factory, "side-room", cofacilitator="Cedar") as world:
        yield world


def badges(tab, pid: str) -> str:
    return tab.page.inner_text(f'#people li[data-participant="{pid}"] .badges')


def test_invite_accept_stepped_out_and_return(meeting):
    from playwright.sync_api import sync_playwright

    m, folder, links = meeting
    wav = write_wav(folder / "voice.wav", syllables(600.0, 60))
    with sync_playwright() as p:
        browser = launch_in(p, m, folder, wav)
        tabs = {}
        try:
            for who in ("Sky", "Cedar", "Juniper", "Wren"):
                tabs[who] = SessionTab(browser, links[who])
                tabs[who].join(who)
            sky, cedar, jun, wren = (tabs[w] for w in ("Sky", "Cedar", "Juniper", "Wren"))
            wait_until(lambda: all(t.people() == 4 for t in tabs.values()), 60, what="4 here")
            pid = {who: pid_of(t) for who, t in tabs.items()}
            wait_until(lambda: energy(wren).get(pid["Juniper"], 0) > LOUD
                       and energy(jun).get(pid["Wren"], 0) > LOUD, 45,
                       what="the members hearing each other")

            # Sky invites Juniper from the people drawer; nothing shows on Wren's page
            sky.page.click("#people-button")
            sky.page.wait_for_selector("#drawer-people", state="visible")
            sky.page.get_by_role("button", name="Invite Juniper to a side room").click()
            jun.page.wait_for_selector("#side-room-invite", state="visible")
            assert jun.page.evaluate("document.activeElement.id") == "side-room-accept"
            assert "Sky" in jun.page.inner_text("#side-room-invite-text")
            # announced as an alertdialog that takes the focus (its title and text are read)
            prompt = jun.page.locator("#side-room-invite")
            assert prompt.get_attribute("role") == "alertdialog"
            assert jun.page.inner_text("#" + prompt.get_attribute("aria-labelledby")) == (
                "A private side room")
            assert prompt.get_attribute("aria-describedby") == "side-room-invite-text"
            sky.page.wait_for_selector("#side-room-pending", state="visible")
            if write_screenshots():
                jun.page.set_viewport_size({"width": 390, "height": 844})
                jun.page.screenshot(path=str(SHOTS / "side-room-invite-390.png"))
                jun.page.set_viewport_size({"width": 1280, "height": 800})
                jun.page.screenshot(path=str(SHOTS / "side-room-invite-1280.png"))
            assert wren.page.locator("#side-room-invite").is_hidden()
            assert "stepped out" not in badges(wren, pid["Juniper"])

            # she steps out: Wren's page shows both stepped out, hears neither
            jun.page.keyboard.press("Enter")  # the focused "Step out" button
            jun.page.wait_for_selector("#side-room-panel", state="visible")
            sky.page.wait_for_selector("#side-room-panel", state="visible")
            assert "Sky" in jun.page.inner_text("#side-room-panel-text")
            assert "Juniper" in sky.page.inner_text("#side-room-panel-text")
            wren.page.click("#people-button")
            wren.page.wait_for_selector("#drawer-people", state="visible")
            wait_until(lambda: "stepped out" in badges(wren, pid["Juniper"])
                       and "stepped out" in badges(wren, pid["Sky"]), what="stepped out shown")
            assert wren.page.locator("#side-room-panel").is_hidden()
            wait_until(lambda: "Juniper stepped out" in announced(wren), what="announced")
            wait_until(lambda: energy(sky).get(pid["Juniper"], 0) > LOUD
                       and energy(jun).get(pid["Sky"], 0) > LOUD
                       # (no slot for someone across the wall: no stream, no energy)
                       and energy(wren).get(pid["Juniper"], 0) < QUIET
                       and energy(cedar).get(pid["Juniper"], 0) < QUIET
                       and energy(jun).get(pid["Wren"], 0) < QUIET, 30,
                       what="the side room apart from the group")
            slots = jun.page.evaluate("[...window.havenSession.state.slots.values()]")
            assert set(slots) == {pid["Sky"]}, slots  # she has a stream from Sky alone
            if write_screenshots():
                jun.page.set_viewport_size({"width": 390, "height": 844})
                jun.page.screenshot(path=str(SHOTS / "side-room-member-390.png"))
                wren.page.set_viewport_size({"width": 1280, "height": 800})
                wren.page.screenshot(path=str(SHOTS / "side-room-stepped-out-1280.png"))

            # she returns: every page hears everyone again
            jun.page.get_by_role("button", name="Return to the group").click()
            jun.page.wait_for_selector("#side-room-panel", state="hidden")
            wait_until(lambda: "stepped out" not in badges(wren, pid["Juniper"]),
                       what="back in her seat")
            wait_until(lambda: energy(jun).get(pid["Wren"], 0) > LOUD
                       and energy(wren).get(pid["Juniper"], 0) > LOUD
                       and energy(cedar).get(pid["Sky"], 0) > LOUD, 45,
                       what="the member hearing the group again")
            errors = [e for t in tabs.values() for e in t.errors]
            assert not errors, errors
        finally:
            for t in tabs.values():
                t.close()
            browser.close()
