"""The waiting room end to end in a real headless Chromium against ``haven serve --demo``:
the patient checks in and waits, the therapist admits them, and both browsers land on the
same session room URL (/s/<room id>), each with their own token in the fragment.

Uses its own (async) Playwright launch so it does not depend on the shared browser fixtures.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ROOM_URL = re.compile(r".*/s/(r-[0-9a-f]{16})#([A-Za-z0-9_-]{32,64})$")


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def logged_in_page(browser, base_url, username, password):
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base_url + "/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(base_url + "/")
    return context, page, errors


async def api(page, method, path, body=None):
    """Call the JSON API from inside the page, as its own scripts do (CSRF from the meta)."""
    return await page.evaluate(
        """async ([method, path, body]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const res = await fetch(path, {method, headers: {"Content-Type": "application/json",
                "X-CSRF-Token": csrf}, body: body ? JSON.stringify(body) : undefined});
            return {status: res.status, body: await res.json()};
        }""",
        [method, path, body],
    )


async def test_patient_checks_in_therapist_admits_both_land_in_the_same_room(browser,
                                                                             live_server):
    base = live_server.base_url
    t_ctx, therapist, t_errors = await logged_in_page(browser, base, "therapist",
                                                      live_server.logins["therapist"])
    p_ctx, patient, p_errors = await logged_in_page(browser, base, "patient",
                                                    live_server.logins["patient"])
    try:
        # The therapist schedules a session starting in two minutes (the demo's weekly one
        # is tomorrow), in the therapist's own zone.
        patients = (await api(therapist, "GET", "/api/practice/patients"))["body"]["patients"]
        sam = next(p for p in patients if p["username"] == "patient")
        start = datetime.now(UTC) + timedelta(minutes=2)
        made = await api(therapist, "POST", "/api/appointments", {
            "patient_id": sam["id"], "start_local": start.strftime("%Y-%m-%dT%H:%M"),
            "time_zone": "UTC", "duration_minutes": 30})
        assert made["status"] == 201, made

        # The patient sees it on their sessions page, checks in, and waits.
        await patient.goto(base + "/practice")
        await patient.get_by_role("button", name="Check in").first.click()
        await patient.wait_for_url(re.compile(r".*/practice/visits/v-[0-9a-f]+/wait$"))
        status = patient.locator("#wait-status")
        assert await status.get_attribute("aria-live") == "polite"
        assert "checked in" in (await status.inner_text())

        # The therapist's waiting room shows them (its list refreshes by itself) and admits.
        await therapist.goto(base + "/practice/waiting-room")
        admit = therapist.get_by_role("button", name=re.compile(r"^Admit Sam Patient"))
        await admit.wait_for(timeout=20_000)
        # No script errors on the practice pages so far (the waiting page has been polling).
        assert t_errors == [] and p_errors == []
        await admit.click()
        await therapist.wait_for_url(ROOM_URL, timeout=20_000)

        # The patient's page notices the admission and goes to the same room.
        await patient.wait_for_url(ROOM_URL, timeout=30_000)
        t_room, t_token = ROOM_URL.match(therapist.url).groups()
        p_room, p_token = ROOM_URL.match(patient.url).groups()
        assert t_room == p_room
        assert t_token != p_token

        # The therapist joins and ends the session from inside the room (People -> End, and
        # a confirmation). Ended means ended everywhere: the records, the waiting room, the
        # patient's sessions and the dashboard.
        await therapist.wait_for_selector("html[data-session-state='lobby']", state="attached",
                                          timeout=30_000)
        await therapist.click("#join")
        await therapist.wait_for_selector("html[data-session-state='in-room']",
                                          state="attached", timeout=30_000)
        await therapist.click("#people-button")
        await therapist.click("#end-session")
        await therapist.get_by_role("button", name="End the session").last.click()
        await therapist.wait_for_selector("html[data-session-state='ended']", state="attached",
                                          timeout=20_000)
        await therapist.goto(base + "/practice/waiting-room")
        assert (await api(therapist, "GET", "/api/waiting-room"))["body"]["visits"] == []
        summary = await therapist.locator("#waiting-summary").inner_text()
        assert "Nobody is waiting" in summary, summary
        assert await therapist.locator("#waiting-list li").count() == 0
        await patient.goto(base + "/practice")
        text = await patient.locator("main").inner_text()
        assert "Go to the waiting room" not in text
        assert "This session has ended." in text
        await patient.goto(base + "/")
        await patient.wait_for_timeout(1500)  # the dashboard fills itself in
        assert "Go to the waiting room" not in await patient.locator("main").inner_text()
    finally:
        await t_ctx.close()
        await p_ctx.close()
