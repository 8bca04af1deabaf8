"""Safety in groups, through the real app on a real SQLite file: crisis lines (the shipped
file, operator files, the CLI refusing a bad one), private alerts and reports, consented
group notes driven by presence, crypto-shredding on delete, the raw database and WAL bytes,
and the authorisation matrix of every safety operation x every role."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groups import crisis, group_notes, presence, safety
from groups.crisis import CrisisLinesError
from tests.conftest import ROOT, Browserish, free_port
from tests.conftest import test_config as config_for
from tests.groups_support import PASSWORD, World, build_world, login
from therapy import accounts, care, care_alerts
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.storage import open_database
from web import appkeys
from web.app import create_app

# --- crisis lines ---------------------------------------------------------------------------


def test_shipped_crisis_lines_are_valid_and_complete():
    raw = crisis.SHIPPED.read_bytes()
    data = json.loads(raw)
    directory = crisis.shipped()
    assert len(directory.countries) >= 20
    assert set(directory.countries) == set(data["countries"])  # every country loaded
    for code, country in directory.countries.items():
        assert re.fullmatch(r"[A-Z]{2}", code)
        assert crisis.NUMBER_RE.match(country.emergency), code
        assert country.lines, code
        for line in country.lines:
            assert crisis.NUMBER_RE.match(line.number), (code, line.number)
            assert 2 <= len(re.sub(r"\D", "", line.number)) <= 15
            assert line.source.startswith("https://") and "." in line.source, (code, line)
            assert line.name and line.description and line.hours
            assert line.chat is None or line.chat.startswith("https://")
    # Well-known lines are where they belong.
    numbers = {c: {ln.number for ln in directory.countries[c].lines} for c in directory.countries}
    assert "988" in numbers["US"] and "116 123" in numbers["GB"] and "13 11 14" in numbers["AU"]
    assert {"988", "1-833-456-4566"} <= numbers["CA"] and "0800 111 0 111" in numbers["DE"]
    assert directory.countries["US"].emergency == "911"
    assert directory.countries["AU"].emergency == "000"


def _file(tmp_path: Path, data) -> Path:
    path = tmp_path / "lines.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD_LINE = {"name": "Test line", "number": "+49 30 1234", "description": "d", "hours": "24/7",
             "text": None, "chat": None, "source": "https://example.org/lines"}


def test_operator_file_extends_or_replaces(tmp_path):
    extended = crisis.load([_file(tmp_path, {
        "format": crisis.FORMAT, "countries": {"DE": {"name": "Deutschland", "emergency": "112",
                                                       "lines": [GOOD_LINE]}}})])
    assert extended.countries["DE"].lines[0].name == "Test line"
    assert "US" in extended.countries and len(extended.sources) == 2
    replaced = crisis.load([_file(tmp_path, {
        "format": crisis.FORMAT, "mode": "replace",
        "countries": {"IS": {"name": "Iceland", "emergency": "112", "lines": [GOOD_LINE]}}})])
    assert set(replaced.countries) == {"IS"}


BAD_FILES = [
    ("not json", "{", "not valid JSON"),
    ("no format", {"countries": {}}, "format must be"),
    ("bad code", {"format": crisis.FORMAT, "countries": {"usa": {}}}, "two capital letters"),
    ("no lines", {"format": crisis.FORMAT, "countries": {"US": {"name": "U", "emergency": "911",
                                                                "lines": []}}}, "lines must"),
    ("bad number", {"format": crisis.FORMAT, "countries": {"US": {
        "name": "U", "emergency": "911", "lines": [{**GOOD_LINE, "number": "call us"}]}}},
     "is not a phone number"),
    ("no source", {"format": crisis.FORMAT, "countries": {"US": {
        "name": "U", "emergency": "911", "lines": [{**GOOD_LINE, "source": None}]}}},
     "source must be an https://"),
    ("bad mode", {"format": crisis.FORMAT, "mode": "merge", "countries": {}}, "mode must"),
    ("unknown field", {"format": crisis.FORMAT, "countries": {"US": {
        "name": "U", "emergency": "911", "lines": [{**GOOD_LINE, "fax": "1"}]}}},
     "unknown field 'fax'"),
]


@pytest.mark.parametrize("label,data,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_operator_files_name_the_problem(tmp_path, label, data, message):
    with pytest.raises(CrisisLinesError) as exc:
        crisis.load([_file(tmp_path, data)])
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(tmp_path / "lines.json") in str(exc.value)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=24))
def test_number_validation_never_crashes(text):
    try:
        got = crisis._number("f", text)
    except CrisisLinesError:
        return
    assert re.fullmatch(r"\+?[0-9][0-9 -]*", got)


@pytest.mark.parametrize("where", ["option", "data_dir"])
def test_serve_refuses_a_bad_crisis_file_with_one_line(tmp_path, where):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    bad = data_dir / "crisis_lines.json" if where == "data_dir" else tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": crisis.FORMAT, "countries": {"US": {
        "name": "U", "emergency": "911", "lines": [{**GOOD_LINE, "number": "x"}]}}}))
    args = [sys.executable, "-m", "web.cli", "serve", "--data-dir", str(data_dir),
            "--port", str(free_port())]
    if where == "option":
        args += ["--crisis-lines", str(bad)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("haven: error: crisis lines file") and "not a phone number" in lines[0]
    assert "listening" not in done.stdout


def test_country_from_locales():
    known = crisis.shipped().countries
    assert crisis.country_from_locales(crisis.accept_language("fr;q=0.3, en-GB"), known) == "GB"
    assert crisis.country_from_locales(["de"], known) == "DE"
    assert crisis.country_from_locales(["en"], known) is None
    assert crisis.country_from_locales(["xx-ZZ"], known) is None


# --- the world ------------------------------------------------------------------------------

@dataclass
class Safe:
    app: object
    world: World
    client: Browserish
    new_client: object
    therapist: str = "ther-tess"

    def db(self):
        return open_database(self.app[appkeys.DATA_DIR].db_path)

    def run(self, fn):
        db = self.db()
        try:
            return fn(db)
        finally:
            db.close()

    def ring(self):
        return self.app[appkeys.DATA_DIR].keyring

    @property
    def gid(self):
        return self.world.group_a

    def meeting_id(self):
        return self.run(lambda db: db.execute(
            "SELECT id FROM group_meetings WHERE room_id = ?", [self.world.room_id]).fetchone()[0])

    def present(self, username):
        mid = self.world.members[username]
        return self.run(lambda db: presence.joined(db, self.meeting_id(), mid))

    def leave(self, username):
        mid = self.world.members[username]
        self.run(lambda db: presence.left(db, self.meeting_id(), mid))

    async def as_(self, username):
        c = await self.new_client(self.client)
        if username:
            await login(c, username)
        return c


@pytest.fixture
async def safe(aiohttp_client, new_client, tmp_path):
    app = create_app(config_for(tmp_path / "data"))
    client = Browserish(await aiohttp_client(app))
    world = build_world(app)
    s = Safe(app, world, client, new_client)
    s.run(lambda db: accounts.create_user(db, s.therapist, PASSWORD, Role.THERAPIST, "Tess T",
                                          "UTC", cost=app[appkeys.CONFIG].scrypt_cost))
    return s


def consent_body():
    doc = group_notes.document()
    return {"version": doc.version, "sha256": doc.sha256}


G = "/api/groups/{gid}"


async def test_alert_reaches_only_the_facilitators(safe):
    juniper, fern, vale = (await safe.as_("acct-juniper"), await safe.as_("fac-fern"),
                           await safe.as_("acct-victor"))
    safe.present("acct-juniper")
    r = await juniper.post(f"/api/groups/{safe.gid}/safety/alerts",
                           {"message": "having a hard night"})
    assert r.status == 201, await r.text()
    board = (await (await fern.get(f"/api/groups/{safe.gid}/safety")).json())["safety"]
    alert = board["alerts"][0]
    assert alert["pseudonym"] == "Juniper" and alert["message"] == "having a hard night"
    assert alert["in_meeting"] is True
    assert (await vale.get(f"/api/groups/{safe.gid}/safety")).status == 403
    for c in (vale, juniper):
        page = await (await c.get(f"/groups/{safe.gid}")).text()
        assert "hard night" not in page
    # The hub's read for live delivery: pseudonym, no text.
    live = safe.run(lambda db: safety.open_alerts_for_meeting(db, safe.meeting_id()))
    assert [a["pseudonym"] for a in live] == ["Juniper"] and "message" not in live[0]
    audit = safe.run(lambda db: [r[0] for r in db.execute("SELECT action FROM audit_log")])
    assert "safety.alert" in audit and "safety.dashboard_read" in audit


async def test_reports_hide_the_reporter_and_route_facilitator_reports_to_admin(safe):
    juniper, fern = await safe.as_("acct-juniper"), await safe.as_("fac-fern")
    vale, ava = await safe.as_("acct-victor"), await safe.as_("admin-ava")
    w = safe.world
    r1 = await juniper.post(f"/api/groups/{safe.gid}/safety/reports", {
        "member_id": w.members["acct-victor"], "category": "harassment", "text": "spoke rudely"})
    r2 = await juniper.post(f"/api/groups/{safe.gid}/safety/reports", {
        "member_id": w.members["fac-fern"], "category": "unsafe_advice", "text": "told me x"})
    assert r1.status == r2.status == 201
    assert (await r2.json())["report"]["goes_to"] == "admin"
    board = (await (await fern.get(f"/api/groups/{safe.gid}/safety")).json())["safety"]
    assert [r["reported"] for r in board["reports"]] == ["Vale"]
    assert board["reports"][0]["reporter"] == "Juniper"
    # The reported member sees nothing of it anywhere.
    assert (await vale.get(f"/api/groups/{safe.gid}/safety")).status == 403
    for path in (f"/groups/{safe.gid}", "/groups/mine", "/help", f"/groups/{safe.gid}/safety"):
        page = await (await vale.get(path)).text()
        assert "rudely" not in page and "Juniper" not in page, path
    admin = (await (await ava.get("/api/admin/safety/reports")).json())["reports"]
    assert [r["reported"] for r in admin] == ["Sage (facilitator)"]
    rid = admin[0]["id"]
    assert (await fern.send("PATCH", f"/api/groups/{safe.gid}/safety/reports/{rid}",
                            {"status": "handled"})).status == 403
    done = await ava.send("PATCH", f"/api/groups/{safe.gid}/safety/reports/{rid}",
                          {"status": "dismissed", "note": "talked to both"})
    assert done.status == 200
    again = (await (await ava.get("/api/admin/safety/reports")).json())["reports"][0]
    assert again["status"] == "dismissed" and again["resolution"] == "talked to both"


async def test_group_notes_need_everyone_presents_consent(safe):
    fern, juniper = await safe.as_("fac-fern"), await safe.as_("acct-juniper")
    key = safe.world.key
    safe.present("fac-fern")
    assert safe.present("acct-juniper")["state"] == "off"
    refused = await fern.post(f"/api/groups/{safe.gid}/meetings/{key}/notes", {"text": "n1"})
    assert refused.status == 409
    err = (await refused.json())["error"]
    assert err["code"] == "consent_missing" and err["missing"] == ["Juniper"]
    # The member sees only whether notes are taken, never who is missing.
    status = await (await juniper.get(f"/api/groups/{safe.gid}/notes/status")).json()
    assert status["notes"] == {"taking_notes": False, "state": "off"}
    safe.leave("acct-juniper")
    started = await fern.post(f"/api/groups/{safe.gid}/meetings/{key}/notes", {"text": "n1"})
    assert started.status == 201, await started.text()
    nid = (await started.json())["note"]["id"]
    # Juniper rejoins mid-note: note-taking pauses at once, edits are refused.
    assert safe.present("acct-juniper") == {"state": "paused", "missing": ["Juniper"],
                                            "note_id": nid}
    edit = await fern.send("PATCH", f"/api/groups/{safe.gid}/notes/{nid}", {"text": "n1 more"})
    assert edit.status == 409 and (await edit.json())["error"]["missing"] == ["Juniper"]
    editor = await (await fern.get(f"/api/groups/{safe.gid}/meetings/{key}/notes")).json()
    assert editor["notes"]["state"] == "paused"
    page = await (await fern.get(f"/groups/{safe.gid}/safety")).text()
    assert "Notes paused: not everyone has consented (Juniper)" in page
    form = await fern.post(f"/groups/{safe.gid}/safety/note", data={
        "csrf_token": fern.csrf, "key": key, "note_id": str(nid), "text": "from the page"})
    assert form.status == 409 and "not everyone has consented" in await form.text()
    status = await (await juniper.get(f"/api/groups/{safe.gid}/notes/status")).json()
    assert status["notes"]["state"] == "paused" and "missing" not in status["notes"]
    gave = await juniper.post(f"/api/groups/{safe.gid}/notes/consent", consent_body())
    assert gave.status == 200 and (await gave.json())["consent"]["consented"]
    edit = await fern.send("PATCH", f"/api/groups/{safe.gid}/notes/{nid}", {"text": "n1 more"})
    assert edit.status == 200
    assert "Taking notes" in await (await fern.get(f"/groups/{safe.gid}/safety")).text()
    assert (await (await juniper.get(f"/api/groups/{safe.gid}/notes/status")).json())[
        "notes"]["taking_notes"] is True
    page = await (await juniper.get(f"/groups/{safe.gid}")).text()
    assert "A facilitator is taking notes" in page
    # Withdrawal stops future notes; past notes stay, and the member is told.
    gone = await juniper.send("DELETE", f"/api/groups/{safe.gid}/notes/consent")
    assert "stay" in (await gone.json())["consent"]["message"]
    edit = await fern.send("PATCH", f"/api/groups/{safe.gid}/notes/{nid}", {"text": "n1 later"})
    assert edit.status == 409
    notes = (await (await fern.get(f"/api/groups/{safe.gid}/notes")).json())["notes"]
    assert notes[0]["text"] == "n1 more"
    assert (await juniper.get(f"/api/groups/{safe.gid}/notes")).status == 403
    # A stale consent hash is refused.
    stale = await juniper.post(f"/api/groups/{safe.gid}/notes/consent",
                               {"version": 1, "sha256": "0" * 64})
    assert stale.status == 422


async def test_raw_database_and_wal_hold_no_safety_text(safe):
    fern, juniper = await safe.as_("fac-fern"), await safe.as_("acct-juniper")
    w = safe.world
    secret = {"alert": "ZEBRAALERTTEXT", "report": "QUOKKAREPORTTEXT", "note": "NARWHALNOTE",
              "resolution": "OKAPIRESOLVED", "concern": "TAPIRCONCERN"}
    await juniper.post(f"/api/groups/{safe.gid}/safety/alerts", {"message": secret["alert"]})
    r = await juniper.post(f"/api/groups/{safe.gid}/safety/reports", {
        "member_id": w.members["acct-victor"], "category": "other", "text": secret["report"]})
    rid = (await r.json())["report"]["id"]
    await fern.send("PATCH", f"/api/groups/{safe.gid}/safety/reports/{rid}",
                    {"status": "handled", "note": secret["resolution"]})
    await fern.post(f"/api/groups/{safe.gid}/safety/concerns", {
        "member_id": w.members["acct-juniper"], "note": secret["concern"]})
    made = await fern.post(f"/api/groups/{safe.gid}/meetings/{w.key}/notes",
                           {"text": secret["note"]})
    assert made.status == 201
    board = await (await fern.get(f"/api/groups/{safe.gid}/safety")).text()
    assert all(s in board for k, s in secret.items() if k != "note")
    tess = safe.run(lambda db: accounts.find_user(db, "ther-tess"))
    safe.run(lambda db: care.link(db, tess.id, w.users["acct-orla"].id, actor=Actor.system()))
    orla = await safe.as_("acct-orla")
    secret["care"] = "WOMBATCAREALERT"
    assert (await orla.post("/api/me/safety/alerts", {"message": secret["care"]})).status == 201
    data_dir = safe.app[appkeys.DATA_DIR].db_path
    files = [p for p in data_dir.parent.iterdir() if p.name.startswith(data_dir.name)]
    assert any(p.name.endswith("-wal") for p in files)
    for path in files:
        raw = path.read_bytes()
        for text in secret.values():
            for enc in (text.encode(), text.encode("utf-16-le")):
                assert enc not in raw, (path.name, text)


async def test_deleting_a_group_crypto_shreds_its_records(safe):
    fern, juniper, ava = (await safe.as_("fac-fern"), await safe.as_("acct-juniper"),
                          await safe.as_("admin-ava"))
    await juniper.post(f"/api/groups/{safe.gid}/safety/alerts", {"message": "please call"})
    await fern.post(f"/api/groups/{safe.gid}/meetings/{safe.world.key}/notes", {"text": "t"})
    before = safe.run(lambda db: db.execute(
        "SELECT wrapped FROM group_keys WHERE group_id = ?", [safe.gid]).fetchone()[0])
    gone = await ava.send("DELETE", f"/api/groups/{safe.gid}")
    assert gone.status == 200 and (await gone.json())["group"]["keys_destroyed"] == 1
    board = (await (await fern.get(f"/api/groups/{safe.gid}/safety")).json())["safety"]
    assert board["shredded"] and board["alerts"][0]["message"] is None
    notes = (await (await fern.get(f"/api/groups/{safe.gid}/notes")).json())["notes"]
    assert notes[0]["text"] is None
    wrapped = safe.run(lambda db: db.execute(
        "SELECT wrapped FROM group_keys WHERE group_id = ?", [safe.gid]).fetchall())
    assert wrapped and all(w[0] is None for w in wrapped)
    db_path = safe.app[appkeys.DATA_DIR].db_path
    for path in db_path.parent.iterdir():
        if path.name.startswith(db_path.name):
            assert before not in path.read_bytes(), path.name  # overwritten, WAL folded
    # Nothing new is sealed for a deleted group.
    again = await juniper.post(f"/api/groups/{safe.gid}/safety/alerts", {})
    assert again.status == 409


async def test_group_key_survives_master_key_rotation(safe, tmp_path):
    from therapy import rotation

    fern = await safe.as_("fac-fern")
    await fern.post(f"/api/groups/{safe.gid}/safety/concerns", {
        "member_id": safe.world.members["acct-juniper"], "note": "before rotation"})
    key_path = safe.app[appkeys.DATA_DIR].key_path
    result = safe.run(lambda db: rotation.rotate(db, key_path))
    assert result.rewrapped >= 1 and result.dropped
    from therapy.keyfile import read_keyfile

    ring = read_keyfile(key_path)
    texts = safe.run(lambda db: safety.dashboard(db, ring, safe.world.users["fac-fern"],
                                                 safe.gid, actor=Actor.system()))
    assert texts["alerts"][0]["message"] == "before rotation"


async def test_help_page_country_from_account_then_browser(safe):
    anon = await safe.as_(None)
    page = await (await anon.get("/help", headers={"Accept-Language": "de-DE,de;q=0.9"})).text()
    assert "TelefonSeelsorge" in page and "0800 111 0 111" in page
    juniper = await safe.as_("acct-juniper")
    assert (await juniper.send("PUT", "/api/me/safety", {"country": "AU"})).status == 200
    page = await (await juniper.get("/help", headers={"Accept-Language": "de-DE"})).text()
    assert "Lifeline" in page and "13 11 14" in page and "000" in page
    assert (await juniper.send("PUT", "/api/me/safety", {"country": "ZZ"})).status == 422
    form = await juniper.post("/account/country", data={"country": "GB", "csrf_token": juniper.csrf},
                              allow_redirects=False)
    assert form.status == 303
    assert "Samaritans" in await (await juniper.get("/help")).text()
    # Every page carries the control and the inlined data.
    home = await (await anon.get("/")).text()
    assert 'data-help-now' in home and 'id="crisis-data"' in home and "Get help now" in home


# --- the authorisation matrix ---------------------------------------------------------------

ROLES = {"anonymous": None, "admin": "admin-ava", "therapist": "ther-tess",
         "patient": "acct-orla", "facilitator": "fac-fern", "member": "acct-juniper",
         "non_member": "fac-otto"}
EVERY = tuple(ROLES)
IN = ("anonymous",)


def ex(ok: tuple[str, ...], status: int = 200, **special) -> dict[str, int]:
    out = {r: (status if r in ok else 403) for r in ROLES}
    out["anonymous"] = 401
    out.update(special)
    return out


LOGGED = tuple(r for r in ROLES if r != "anonymous")


@dataclass
class Op:
    method: str
    template: str
    expect: dict[str, int]
    path: object
    body: object = None


def gp(rest=""):
    return lambda s: f"/api/groups/{s.gid}{rest}"


OPS = [
    Op("GET", "/api/safety/crisis-lines", {r: 200 for r in ROLES}, lambda s: "/api/safety/crisis-lines"),
    Op("GET", "/api/me/safety", ex(LOGGED), lambda s: "/api/me/safety"),
    Op("PUT", "/api/me/safety", ex(LOGGED), lambda s: "/api/me/safety", lambda s: {"country": "DE"}),
    Op("POST", G + "/safety/alerts", ex(("member",), 201), gp("/safety/alerts"),
       lambda s: {"message": "m"}),
    Op("POST", G + "/safety/concerns", ex(("facilitator",), 201), gp("/safety/concerns"),
       lambda s: {"member_id": s.world.members["acct-juniper"]}),
    Op("GET", G + "/safety", ex(("facilitator", "admin")), gp("/safety")),
    Op("PATCH", G + "/safety/alerts/{alert_id}", ex(("facilitator", "admin")),
       lambda s: f"/api/groups/{s.gid}/safety/alerts/{s.alert_id}", lambda s: {"status": "handled"}),
    Op("POST", G + "/safety/reports", ex(("member", "facilitator"), 201), gp("/safety/reports"),
       lambda s: {"member_id": s.world.members["acct-victor"], "category": "recording"}),
    Op("PATCH", G + "/safety/reports/{report_id}", ex(("facilitator", "admin")),
       lambda s: f"/api/groups/{s.gid}/safety/reports/{s.report_id}",
       lambda s: {"status": "handled", "note": "ok"}),
    # A report about the facilitator: the admin's alone.
    Op("PATCH", G + "/safety/reports/{report_id}", ex(("admin",)),
       lambda s: f"/api/groups/{s.gid}/safety/reports/{s.fac_report_id}",
       lambda s: {"status": "dismissed"}),
    Op("GET", "/api/admin/safety/reports", ex(("admin",)), lambda s: "/api/admin/safety/reports"),
    Op("GET", G + "/notes/consent", ex(("member", "facilitator")), gp("/notes/consent")),
    Op("POST", G + "/notes/consent", ex(("member", "facilitator")), gp("/notes/consent"),
       lambda s: consent_body()),
    Op("GET", G + "/notes/status", ex(("member", "facilitator", "admin")), gp("/notes/status")),
    Op("GET", G + "/notes", ex(("facilitator",)), gp("/notes")),
    Op("GET", G + "/meetings/{key}/notes", ex(("facilitator",)),
       lambda s: f"/api/groups/{s.gid}/meetings/{s.world.key}/notes"),
    Op("PATCH", G + "/notes/{group_note_id}", ex(("facilitator",)),
       lambda s: f"/api/groups/{s.gid}/notes/{s.note_id}", lambda s: {"close": True}),
    Op("POST", G + "/meetings/{key}/notes", ex(("facilitator",), 201),
       lambda s: f"/api/groups/{s.gid}/meetings/{s.world.key}/notes", lambda s: {"text": "x"}),
    Op("DELETE", G + "/notes/consent", ex(("member", "facilitator")), gp("/notes/consent")),
    Op("POST", "/api/me/safety/alerts", ex(("patient",), 201, member=409),
       lambda s: "/api/me/safety/alerts", lambda s: {"message": "m"}),
    Op("GET", "/api/practice/safety-alerts", ex(("therapist",)),
       lambda s: "/api/practice/safety-alerts"),
    Op("PATCH", "/api/practice/safety-alerts/{care_alert_id}", ex(("therapist",)),
       lambda s: f"/api/practice/safety-alerts/{s.care_alert_id}",
       lambda s: {"status": "handled"}),
    Op("DELETE", G, ex(("admin",)), gp()),
]


async def test_a_patient_alerts_their_therapist_only(safe):
    users = safe.world.users
    tess = safe.run(lambda db: accounts.find_user(db, "ther-tess"))
    safe.run(lambda db: care.link(db, tess.id, users["acct-orla"].id, actor=Actor.system()))
    orla, therapist = await safe.as_("acct-orla"), await safe.as_("ther-tess")
    page = await (await orla.get("/help")).text()
    assert "Let my therapist know" in page and "Tess T" in page
    sent = await orla.post("/help/tell-therapist", data={"csrf_token": orla.csrf,
                                                         "message": "not coping tonight"},
                           allow_redirects=False)
    assert sent.status == 303
    alerts = (await (await therapist.get("/api/practice/safety-alerts")).json())["alerts"]
    assert alerts[0]["message"] == "not coping tonight" and alerts[0]["patient"] == users[
        "acct-orla"].display_name
    assert "not coping tonight" in await (await therapist.get("/practice/alerts")).text()
    other = await safe.as_("acct-juniper")
    refused = await other.post("/api/me/safety/alerts", {})
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "no_therapist"


def test_the_matrix_covers_every_safety_operation(make_app):
    spec = make_app()[appkeys.API].openapi("t", "0")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items()
                  for m, e in ops.items() if "safety" in e.get("tags", [])}
    assert documented == {(op.method, op.template.replace("{gid}", "{group_id}")) for op in OPS}


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_safety_operation_as_every_role(safe, role):
    w = safe.world
    ring = safe.ring()
    users = w.users
    juniper, fern = users["acct-juniper"], users["fac-fern"]
    sys_actor = Actor.system()
    users["ther-tess"] = safe.run(lambda db: accounts.find_user(db, "ther-tess"))
    # The facts every operation acts on: an alert, two reports, consent, presence, a note.
    safe.alert_id = safe.run(lambda db: safety.send_alert(db, ring, juniper, safe.gid, "ALERTSECRET",
                                                          actor=sys_actor))["id"]
    safe.report_id = safe.run(lambda db: safety.file_report(
        db, ring, juniper, safe.gid, w.members["acct-victor"], "harassment", "REPORTSECRET",
        actor=sys_actor))["id"]
    safe.fac_report_id = safe.run(lambda db: safety.file_report(
        db, ring, juniper, safe.gid, w.members["fac-fern"], "other", "FACREPORTSECRET", actor=sys_actor))["id"]
    doc = group_notes.document()
    safe.run(lambda db: group_notes.give_consent(db, juniper, safe.gid, doc.version, doc.sha256,
                                                 actor=sys_actor))
    safe.present("acct-juniper")
    safe.note_id = safe.run(lambda db: group_notes.start_note(
        db, ring, fern, safe.gid, w.key, "NOTESECRET", actor=sys_actor))["id"]
    tess, orla = users["ther-tess"], users["acct-orla"]
    safe.run(lambda db: care.link(db, tess.id, orla.id, actor=sys_actor))
    safe.care_alert_id = safe.run(lambda db: care_alerts.send(db, ring, orla, "CARESECRET",
                                                              actor=sys_actor))["id"]
    c = await safe.as_(ROLES[role])
    spec = safe.app[appkeys.API].openapi("t", "0")
    failures = []
    for op in OPS:
        path = op.path(safe)
        body = op.body(safe) if op.body else None
        resp = await c.send(op.method, path, json=body)
        want = op.expect[role]
        text = await resp.text()
        documented = spec["paths"][op.template.replace("{gid}", "{group_id}")][op.method.lower()][
            "responses"]
        if resp.status != want or str(resp.status) not in documented:
            failures.append(f"{op.method} {op.template}: {resp.status} (want {want}) {text[:160]}")
        if role not in ("facilitator", "admin"):
            for leak in ("ALERTSECRET", "REPORTSECRET", "NOTESECRET"):
                assert leak not in text, (op.template, text)
        if role != "admin":
            assert "FACREPORTSECRET" not in text, (op.template, text)
        if role != "therapist":
            assert "CARESECRET" not in text, (op.template, text)
    assert not failures, "\n".join(failures)
