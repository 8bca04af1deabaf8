"""The practice over HTTP, on the real app: invites, scheduling, consent, notes and their
permission matrix (a sample), waiting room, export, audit trail, erasure, pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from therapy import accounts, rotation
from therapy.accounts import Role
from therapy.storage import open_database
from web import appkeys

PASSWORD = "correct horse battery"


def app_of(client):
    return client.client.server.app


def make_user(client, username, role, tz="UTC", display=None):
    app = app_of(client)
    db = open_database(app[appkeys.DATA_DIR].db_path)
    try:
        return accounts.create_user(db, username, PASSWORD, role, display or username.title(),
                                    tz, cost=app[appkeys.CONFIG].scrypt_cost)
    finally:
        db.close()


async def json_ok(resp, status=200):
    body = await resp.json()
    assert resp.status == status, body
    return body


async def error_of(resp, status):
    body = await resp.json()
    assert resp.status == status, body
    assert set(body["error"]) >= {"code", "message"} and body["error"]["message"]
    return body["error"]


async def invite_patient(therapist, new_client, username, tz="America/New_York"):
    invite = await json_ok(await therapist.post("/api/practice/invites"), 201)
    path = re.sub(r"^https?://[^/]+", "", invite["invite_url"])
    patient = await new_client(therapist)
    await patient.prime()
    page = await patient.get(path)
    assert page.status == 200 and "invites you" in await page.text()
    resp = await patient.client.post(path, data={
        "csrf_token": patient.csrf, "username": username, "password": PASSWORD,
        "display_name": username.title(), "time_zone": tz}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/practice/consent"
    # The invite is used up.
    again = await patient.get(path)
    assert again.status == 404
    return patient, path


async def sign_consents(patient, which=("telehealth", "notes")):
    docs = (await json_ok(await patient.get("/api/consent-documents")))["documents"]
    for doc in docs:
        if doc["id"] in which:
            await json_ok(await patient.post("/api/consents", {
                "document_id": doc["id"], "version": doc["version"], "sha256": doc["sha256"],
                "typed_name": "Sam Patient"}), 201)


@pytest.fixture
async def clinic(client, new_client):
    make_user(client, "therapist", Role.THERAPIST, "Europe/London", "Dr Robin")
    make_user(client, "therapist2", Role.THERAPIST)
    make_user(client, "admin", Role.ADMIN)
    await json_ok(await client.login("therapist"))
    patient, _ = await invite_patient(client, new_client, "sam")
    me = (await json_ok(await patient.get("/api/me")))["user"]
    other = await new_client(client)
    await json_ok(await other.login("therapist2"))
    admin = await new_client(client)
    await json_ok(await admin.login("admin"))
    return {"t": client, "p": patient, "pid": me["id"], "t2": other, "admin": admin,
            "new_client": new_client}


async def test_invite_links_patient_to_therapist(clinic):
    t = clinic["t"]
    patients = (await json_ok(await t.get("/api/practice/patients")))["patients"]
    assert [p["username"] for p in patients] == ["sam"]
    assert patients[0]["notes_consent"] is False
    assert (await json_ok(await clinic["t2"].get("/api/practice/patients")))["patients"] == []
    # Patients cannot make invites.
    await error_of(await clinic["p"].post("/api/practice/invites"), 403)


async def test_invalid_invite_is_a_readable_404(client):
    resp = await client.get("/practice/invite/" + "x" * 32)
    assert resp.status == 404 and "not valid" in await resp.text()


async def test_notes_refused_without_consent_then_allowed_then_refused_after_withdrawal(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    note = {"kind": "progress", "template": "soap", "sections": {"subjective": "ok"}}
    err = await error_of(await t.post(f"/api/patients/{pid}/notes", note), 409)
    assert err["code"] == "consent_required" and "consent" in err["message"]
    await sign_consents(p)
    created = await json_ok(await t.post(f"/api/patients/{pid}/notes", note), 201)
    assert created["note"]["status"] == "draft"
    await json_ok(await p.post("/api/consents/notes/withdraw"))
    err = await error_of(await t.post(f"/api/patients/{pid}/notes", note), 409)
    assert err["code"] == "consent_required"
    status = (await json_ok(await t.get(f"/api/consents?patient_id={pid}")))["status"]
    assert {s["document"]["id"]: bool(s["active"]) for s in status} == {
        "telehealth": True, "notes": False}
    # Stale document hash and unknown fields are clear 4xx errors.
    err = await error_of(await p.post("/api/consents", {
        "document_id": "notes", "version": 1, "sha256": "0" * 64, "typed_name": "Sam"}), 409)
    assert err["code"] == "stale_document"
    err = await error_of(await p.post("/api/consents", {"document_id": "notes", "x": 1}), 422)
    assert err["code"] == "invalid_field"


async def test_note_permission_matrix_over_http(clinic):
    t, t2, p, admin, pid = clinic["t"], clinic["t2"], clinic["p"], clinic["admin"], clinic["pid"]
    await sign_consents(p)
    ids = {}
    for name, kind, shared, sign in [("shared", "progress", True, True),
                                     ("unshared", "progress", False, True),
                                     ("draft", "progress", True, False),
                                     ("psych", "psychotherapy", False, True)]:
        n = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
            "kind": kind, "template": "birp", "shared_with_patient": shared,
            "sections": {"behavior": f"text of {name}"}}), 201)
        ids[name] = n["note"]["id"]
        if sign:
            await json_ok(await t.post(f"/api/notes/{ids[name]}/sign"))
    anon = await clinic["new_client"](t)
    expect = {
        "t": {"shared": 200, "unshared": 200, "draft": 200, "psych": 200},
        "t2": {"shared": 403, "unshared": 403, "draft": 403, "psych": 403},
        "p": {"shared": 200, "unshared": 403, "draft": 403, "psych": 403},
        "admin": {"shared": 403, "unshared": 403, "draft": 403, "psych": 403},
        "anon": {"shared": 401, "unshared": 401, "draft": 401, "psych": 401},
    }
    who = {"t": t, "t2": t2, "p": p, "admin": admin, "anon": anon}
    for name, row in expect.items():
        for note, status in row.items():
            resp = await who[name].get(f"/api/notes/{ids[note]}")
            assert resp.status == status, (name, note, await resp.text())
    body = (await json_ok(await p.get(f"/api/notes/{ids['shared']}")))["note"]
    assert body["sections"][0]["text"] == "text of shared"
    # Lists show only what each may read.
    listed = (await json_ok(await p.get(f"/api/patients/{pid}/notes")))["notes"]
    assert [n["id"] for n in listed] == [ids["shared"]]
    await error_of(await t2.get(f"/api/patients/{pid}/notes"), 403)
    # Locked notes cannot be edited by anyone; addenda instead.
    err = await error_of(await t.send("PATCH", f"/api/notes/{ids['shared']}",
                                      {"sections": {"behavior": "changed"}}), 409)
    assert err["code"] == "locked"
    await error_of(await t2.send("PATCH", f"/api/notes/{ids['draft']}",
                                 {"sections": {"behavior": "x"}}), 403)
    await error_of(await p.send("PATCH", f"/api/notes/{ids['draft']}",
                                {"sections": {"behavior": "x"}}), 403)
    await json_ok(await t.post(f"/api/notes/{ids['shared']}/addenda", {"text": "fix"}), 201)
    await json_ok(await t.send("PATCH", f"/api/notes/{ids['draft']}",
                               {"sections": {"behavior": "better"}}))
    # Psychotherapy notes are never shared.
    err = await error_of(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "psychotherapy", "template": "free", "shared_with_patient": True,
        "sections": {"text": "x"}}), 422)
    assert err["code"] == "invalid_field"


async def test_audit_trail_access_and_reads_are_logged(clinic):
    t, t2, p, admin, pid = clinic["t"], clinic["t2"], clinic["p"], clinic["admin"], clinic["pid"]
    await sign_consents(p)
    n = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "private words"}}), 201)
    await json_ok(await t.get(f"/api/notes/{n['note']['id']}"))
    entries = (await json_ok(await t.get(f"/api/audit?patient_id={pid}")))["entries"]
    actions = [e["action"] for e in entries]
    assert {"note.create", "note.read", "consent.sign", "care.link"} <= set(actions)
    read = next(e for e in entries if e["action"] == "note.read")
    assert read["actor_name"] == "Dr Robin" and read["actor_session"]
    assert "private words" not in str(entries)
    await error_of(await t2.get(f"/api/audit?patient_id={pid}"), 403)
    await error_of(await p.get(f"/api/audit?patient_id={pid}"), 403)
    await error_of(await t.get("/api/audit"), 400)
    everything = (await json_ok(await admin.get("/api/audit")))["entries"]
    # The therapist's read of the log was itself logged.
    assert any(e["action"] == "audit.read" and e["detail"].get("patient_id") == pid
               for e in everything)
    page = await t.get(f"/practice/audit?patient_id={pid}")
    assert page.status == 200 and "note.read" in await page.text()


async def test_schedule_and_see_in_own_time_zone(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    body = await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": "2030-03-04T18:00", "time_zone": "Europe/London",
        "weekly": True, "occurrences": 6, "environment_id": "forest"}), 201)
    appt = body["appointment_id"]
    mine = (await json_ok(await p.get("/api/appointments")))["occurrences"]
    labels = [o["local_label"] for o in mine]
    # 4 March 2030 GMT/EST; 11 March: US on EDT, UK still GMT; 1 April: both summer time.
    assert labels[0] == "Monday 4 March 2030, 13:00 EST"
    assert labels[1] == "Monday 11 March 2030, 14:00 EDT"
    assert labels[4] == "Monday 1 April 2030, 13:00 EDT"
    assert mine[0]["with"] == "Dr Robin" and mine[0]["environment_name"]
    theirs = (await json_ok(await t.get("/api/appointments")))["occurrences"]
    assert {o["local_label"][-9:] for o in theirs} == {"18:00 GMT", "18:00 BST"}
    # Patient picks a place for one session; therapist cannot.
    await json_ok(await p.send("PUT", f"/api/appointments/{appt}/environment",
                               {"environment_id": "beach", "occurrence": 2}))
    await error_of(await t.send("PUT", f"/api/appointments/{appt}/environment",
                                {"environment_id": "beach"}), 403)
    err = await error_of(await p.send("PUT", f"/api/appointments/{appt}/environment",
                                      {"environment_id": "moon"}), 422)
    assert err["field"] == "environment_id"
    # Reschedule and cancel; another therapist cannot.
    await json_ok(await t.post(f"/api/appointments/{appt}/reschedule", {
        "occurrence": 1, "start_local": "2030-03-12T09:30"}))
    await error_of(await clinic["t2"].post(f"/api/appointments/{appt}/cancel", {}), 403)
    await json_ok(await t.post(f"/api/appointments/{appt}/cancel", {"occurrence": 3}))
    occ = (await json_ok(await p.get(f"/api/appointments/{appt}")))["occurrences"]
    assert occ[1]["local_label"] == "Tuesday 12 March 2030, 05:30 EDT"
    assert occ[2]["environment_id"] == "beach" and occ[3]["cancelled"]
    err = await error_of(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": "2030-03-04T18:00+01:00", "time_zone": "UTC"}), 422)
    assert err["field"] == "start_local"
    await error_of(await clinic["t2"].get(f"/api/appointments/{appt}"), 403)
    page = await p.get(f"/practice/appointments/{appt}")
    assert page.status == 200 and "Change the place" in await page.text()


async def test_waiting_room_over_http(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    start = datetime.now(UTC) + timedelta(minutes=5)
    appt = (await json_ok(await t.post("/api/appointments", {
        "patient_id": pid, "start_local": start.strftime("%Y-%m-%dT%H:%M"),
        "time_zone": "UTC"}), 201))["appointment_id"]
    path = f"/api/appointments/{appt}/occurrences/0/check-in"
    err = await error_of(await p.post(path), 409)
    assert err["code"] == "consent_required"
    await sign_consents(p, ("telehealth",))
    visit = (await json_ok(await p.post(path), 201))["visit"]
    assert visit["status"] == "waiting"
    err = await error_of(await p.post(f"/api/visits/{visit['id']}/join"), 409)
    assert err["code"] == "still_waiting"
    await error_of(await t.post(path), 403)
    waiting = (await json_ok(await t.get("/api/waiting-room")))["visits"]
    assert [v["patient"]["display_name"] for v in waiting] == ["Sam"]
    await error_of(await clinic["t2"].post(f"/api/visits/{visit['id']}/admit"), 403)
    host = await json_ok(await t.post(f"/api/visits/{visit['id']}/admit"))
    member = await json_ok(await p.post(f"/api/visits/{visit['id']}/join"))
    assert host["room_id"] == member["room_id"]
    assert host["join_path"].split("#")[0] == member["join_path"].split("#")[0] == \
        f"/s/{host['room_id']}"
    assert host["join_path"] != member["join_path"]
    await json_ok(await t.post(f"/api/visits/{visit['id']}/end"))
    status = (await json_ok(await p.get(f"/api/visits/{visit['id']}")))["visit"]
    assert status["status"] == "ended"
    await error_of(await p.post(f"/api/visits/{visit['id']}/join"), 409)


async def test_patient_record_export_and_pages(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    await sign_consents(p)
    n = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "dap", "shared_with_patient": True,
        "sections": {"data": "We practised breathing <script>alert(1)</script>"}}), 201)
    await json_ok(await t.post(f"/api/notes/{n['note']['id']}/sign"))
    resp = await p.get("/api/me/record")
    record = await json_ok(resp)
    assert "attachment" in resp.headers["Content-Disposition"]
    assert record["progress_notes"][0]["sections"][0]["text"].startswith("We practised")
    for path in ("/practice/record", "/practice/record/print"):
        page = await p.get(path)
        text = await page.text()
        assert page.status == 200 and "We practised breathing" in text
        assert "<script>alert(1)</script>" not in text  # escaped
    await error_of(await t.get("/api/me/record"), 403)


async def test_erase_makes_notes_unreadable(clinic):
    t, p, admin, pid = clinic["t"], clinic["p"], clinic["admin"], clinic["pid"]
    await sign_consents(p)
    n = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "x"}}), 201)
    await error_of(await t.post(f"/api/patients/{pid}/erase", {"confirm_username": "sam"}), 403)
    err = await error_of(await admin.post(f"/api/patients/{pid}/erase",
                                          {"confirm_username": "wrong"}), 422)
    assert err["field"] == "confirm_username"
    await json_ok(await admin.post(f"/api/patients/{pid}/erase", {"confirm_username": "sam"}))
    err = await error_of(await t.get(f"/api/notes/{n['note']['id']}"), 410)
    assert err["code"] == "erased"
    err = await error_of(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "y"}}), 410)
    entries = (await json_ok(await admin.get("/api/audit")))["entries"]
    assert any(e["action"] == "patient.crypto_shred" for e in entries)


async def test_server_follows_a_key_rotation_while_running(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    await sign_consents(p)
    n = await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "before rotation"}}), 201)
    data_dir = app_of(t)[appkeys.DATA_DIR]
    db = open_database(data_dir.db_path)
    try:
        rotation.rotate(db, data_dir.key_path)
    finally:
        db.close()
    note = (await json_ok(await t.get(f"/api/notes/{n['note']['id']}")))["note"]
    assert note["sections"][0]["text"] == "before rotation"
    await json_ok(await t.post(f"/api/patients/{pid}/notes", {
        "kind": "progress", "template": "free", "sections": {"text": "after"}}), 201)


async def test_pages_render_for_each_role(clinic):
    t, p, admin, pid = clinic["t"], clinic["p"], clinic["admin"], clinic["pid"]
    await sign_consents(p)
    for client, paths in [
        (t, ["/", "/practice", "/practice/waiting-room", f"/practice/patients/{pid}",
             f"/practice/patients/{pid}/notes/new?template=birp", "/practice/calendar"]),
        (p, ["/", "/practice", "/practice/consent", "/practice/record", "/practice/calendar"]),
        (admin, ["/", "/practice", "/practice/audit", "/practice/admin/erase"]),
    ]:
        for path in paths:
            resp = await client.get(path)
            assert resp.status == 200, (path, await resp.text())
            html = await resp.text()
            assert "<h1" in html and 'style="' not in html
    # Without consent, the patient page and the note form explain why.
    await json_ok(await p.post("/api/consents/notes/withdraw"))
    page = await (await t.get(f"/practice/patients/{pid}")).text()
    assert "consent to session notes" in page
    resp = await t.get(f"/practice/patients/{pid}/notes/new")
    assert resp.status == 409 and "consent to session notes" in await resp.text()
    resp = await clinic["t2"].get(f"/practice/patients/{pid}")
    assert resp.status == 403 and "not one of your patients" in await resp.text()


async def test_forms_flow_consent_note_sign_addendum(clinic):
    t, p, pid = clinic["t"], clinic["p"], clinic["pid"]
    page = await (await p.get("/practice/consent")).text()
    sha = re.search(r'name="sha256" value="([0-9a-f]{64})"', page).group(1)
    resp = await p.client.post("/practice/consent/telehealth/sign", data={
        "csrf_token": p.csrf, "version": "1", "sha256": sha, "typed_name": "Sam Patient"},
        allow_redirects=False)
    assert resp.status == 303
    notes_sha = re.findall(r'name="sha256" value="([0-9a-f]{64})"', page)[1]
    await p.client.post("/practice/consent/notes/sign", data={
        "csrf_token": p.csrf, "version": "1", "sha256": notes_sha, "typed_name": "Sam P"})
    resp = await t.client.post(f"/practice/patients/{pid}/notes", data={
        "csrf_token": t.csrf, "template": "soap", "kind": "progress",
        "section_subjective": "Slept better", "shared_with_patient": "on"},
        allow_redirects=False)
    assert resp.status == 303
    note_url = resp.headers["Location"].split("?")[0]
    resp = await t.client.post(note_url + "/edit", data={
        "csrf_token": t.csrf, "section_subjective": "Slept much better",
        "shared_with_patient": "on", "then": "sign"}, allow_redirects=False)
    assert resp.status == 303 and "note_signed" in resp.headers["Location"]
    resp = await t.client.post(note_url + "/addendum", data={
        "csrf_token": t.csrf, "text": "Also: fewer nightmares"}, allow_redirects=False)
    assert resp.status == 303
    html = await (await p.get(note_url)).text()
    assert "Slept much better" in html and "fewer nightmares" in html
    # Withdrawal from the patient's own page, effective on the next request.
    resp = await p.client.post("/practice/consent/notes/withdraw", data={
        "csrf_token": p.csrf}, allow_redirects=False)
    assert resp.status == 303
    resp = await t.client.post(f"/practice/patients/{pid}/notes", data={
        "csrf_token": t.csrf, "template": "free", "kind": "progress", "section_text": "x"})
    assert resp.status == 409 and "consent" in await resp.text()
    # A form without the CSRF token is refused.
    resp = await t.client.post(f"/practice/patients/{pid}/notes", data={"template": "free"})
    assert resp.status == 403


async def test_openapi_lists_practice_operations(client):
    spec = await json_ok(await client.get("/api/openapi.json"))
    for path in ("/api/appointments", "/api/notes/{note_id}", "/api/visits/{visit_id}/admit",
                 "/api/consents", "/api/audit", "/api/patients/{patient_id}/erase"):
        assert path in spec["paths"], path
