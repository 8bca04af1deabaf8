"""Every page of the demo at phone size, for each role, found by following the links each role
is shown (so pages other issues add are crawled too): nothing overflows sideways, and the
navigation folds behind "Menu" with "Log out" reachable. Then the walkthrough bugs that need a
browser: confirmation before cancelling a session and before "sign and lock", and the copy
buttons for invite and calendar links."""

from __future__ import annotations

import re
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import pytest

from tests.browser.layout import assert_no_horizontal_overflow, overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
ROLES = ["anonymous", "patient", "therapist", "admin"]
# Not pages: API, files, feeds, sign-out; session rooms need a join token (tests elsewhere).
SKIP = re.compile(r"^/(api/|static/|vendor/|calendar/|logout|s/|ws/)|\.(ics|json|png|svg)$")
MAX_PAGES = 60
PER_PATTERN = 2  # /practice/notes/n-1, /practice/notes/n-2, ... : two of each shape are enough


def login(context, base: str, username: str, password: str):
    page = context.new_page()
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")
    return page


def shape(path: str) -> str:
    return re.sub(r"[0-9a-f]{6,}|\d+", "#", path)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_a_phone(chromium, live_server, role):
    base = live_server.base_url
    context = chromium.new_context(viewport=PHONE)
    try:
        page = login(context, base, role, live_server.logins[role]) if role != "anonymous" \
            else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        queue, seen, shapes, checked = deque(["/"]), {"/"}, {}, []
        while queue and len(checked) < MAX_PAGES:
            path = queue.popleft()
            response = page.goto(base + path)
            if response is None or response.status >= 400 or \
                    "text/html" not in (response.headers.get("content-type") or ""):
                continue
            if "/environments/" in path:
                page.wait_for_selector("html[data-scene-state]", state="attached", timeout=30_000)
            assert_no_horizontal_overflow(page, f"{role} {path}")
            checked.append(path)
            for href in page.eval_on_selector_all(
                    "a[href]:not([download])", "els => els.map(a => a.getAttribute('href'))"):
                url = urlsplit(urljoin(base + path, href))
                if url.netloc != urlsplit(base).netloc:
                    continue
                target = url.path + (f"?{url.query}" if url.query else "")
                if SKIP.search(url.path) or target in seen:
                    continue
                if shapes.get(shape(target), 0) >= PER_PATTERN:
                    continue
                shapes[shape(target)] = shapes.get(shape(target), 0) + 1
                seen.add(target)
                queue.append(target)
        assert len(checked) >= (3 if role == "anonymous" else 5), checked
        # The safety pages are reached from every page's "Get help now", the therapist's
        # navigation and the facilitator dashboard's "Safety and notes".
        assert "/help" in checked, checked
        if role == "therapist":
            assert "/practice/alerts" in checked, checked
        if role == "admin":
            assert any(re.fullmatch(r"/groups/\d+/safety", p) for p in checked), checked
        assert not errors, errors
        # The navigation folds on a phone; "Log out" is one tap away and fits.
        page.goto(base + "/")
        if role != "anonymous":
            assert page.is_hidden("text=Log out")
            page.click(".nav-toggle")
            assert page.get_attribute(".nav-toggle", "aria-expanded") == "true"
            logout = page.get_by_role("button", name=re.compile("^Log out"))
            assert logout.is_visible()
            box = logout.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            assert not overflow(page)["bad"]
    finally:
        context.close()


def api(page, method, path, body=None):
    return page.evaluate(
        """async ([method, path, body]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const res = await fetch(path, {method, headers: {"Content-Type": "application/json",
                "X-CSRF-Token": csrf}, body: body ? JSON.stringify(body) : undefined});
            return {status: res.status, body: await res.json()};
        }""", [method, path, body])


def test_cancel_and_sign_ask_first(chromium, live_server):
    base = live_server.base_url
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = login(context, base, "therapist", live_server.logins["therapist"])
        sam = next(p for p in api(page, "GET", "/api/practice/patients")["body"]["patients"]
                   if p["username"] == "patient")
        start = (datetime.now(UTC) + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M")
        made = api(page, "POST", "/api/appointments", {
            "patient_id": sam["id"], "start_local": start, "time_zone": "UTC"})
        appt = made["body"]["appointment_id"]
        page.goto(f"{base}/practice/appointments/{appt}")
        page.click("#occ-0 summary")
        page.click("#occ-0 button.danger")
        dialog = page.locator("dialog.confirm-dialog")
        assert dialog.is_visible() and "Cancel the session of" in dialog.inner_text()
        dialog.get_by_role("button", name="Keep it").click()
        assert not dialog.is_visible()
        occ = api(page, "GET", f"/api/appointments/{appt}")["body"]["occurrences"][0]
        assert occ["cancelled"] is False  # nothing happened
        page.click("#occ-0 button.danger")
        dialog.get_by_role("button", name="Cancel the session").click()
        page.wait_for_url(re.compile(r".*done=cancelled"))
        assert api(page, "GET", f"/api/appointments/{appt}")["body"]["occurrences"][0]["cancelled"]

        # Sign and lock: a draft note stays a draft until the person confirms.
        note = api(page, "POST", f"/api/patients/{sam['id']}/notes", {
            "kind": "progress", "template": "soap", "sections": {"subjective": "Calmer."}})
        assert note["status"] == 201, note
        nid = note["body"]["note"]["id"]
        page.goto(f"{base}/practice/notes/{nid}")
        page.get_by_role("button", name="Save, sign and lock").click()
        assert dialog.is_visible() and "can no longer be changed" in dialog.inner_text()
        page.keyboard.press("Escape")  # the native dialog's cancel: nothing is signed
        assert api(page, "GET", f"/api/notes/{nid}")["body"]["note"]["status"] == "draft"
        page.get_by_role("button", name="Save, sign and lock").click()
        dialog.get_by_role("button", name="Sign and lock").click()
        page.wait_for_url(re.compile(r".*done=note_signed"))
        assert api(page, "GET", f"/api/notes/{nid}")["body"]["note"]["status"] == "signed"
    finally:
        context.close()


def test_invite_and_calendar_links_have_copy_buttons(chromium, live_server):
    base = live_server.base_url
    context = chromium.new_context(viewport=PHONE, permissions=["clipboard-read", "clipboard-write"])
    try:
        page = login(context, base, "therapist", live_server.logins["therapist"])
        page.goto(base + "/practice")
        page.get_by_role("button", name="Make an invite link").click()
        link = page.input_value("#invite-url")
        assert "/practice/invite/" in link
        page.get_by_role("button", name="Copy link").click()
        assert page.evaluate("navigator.clipboard.readText()") == link
        assert page.get_by_role("button", name="Copied").is_visible()
        assert_no_horizontal_overflow(page, "invite link")

        page.goto(base + "/practice/calendar")
        page.get_by_role("button", name=re.compile("Make")).click()
        feed = page.input_value("#feed-url")
        assert feed.endswith(".ics")
        page.get_by_role("button", name="Copy link").click()
        assert page.evaluate("navigator.clipboard.readText()") == feed
        assert_no_horizontal_overflow(page, "calendar link")
    finally:
        context.close()
