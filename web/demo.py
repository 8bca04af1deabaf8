"""``haven serve --demo``: a small demo clinic so a newcomer can click through at once.

Demo passwords are random per data folder, written to ``demo-logins.txt`` (mode 0600) in it
and printed at every start. Seeding is idempotent: accounts that exist are left alone."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from therapy import accounts
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor
from therapy.keyfile import MasterKeyring

DEMO_PEOPLE = [
    ("admin", "Alex Admin", Role.ADMIN, "UTC"),
    ("therapist", "Dr. Robin Reyes", Role.THERAPIST, "Europe/London"),
    ("patient", "Sam Patient", Role.PATIENT, "America/New_York"),
    ("patient2", "Kit Patient", Role.PATIENT, "Europe/Berlin"),
    ("facilitator", "Morgan Facilitator", Role.MODERATOR, "America/New_York"),
    ("member", "Riley Member", Role.PATIENT, "America/Chicago"),
    ("member2", "Jordan Member", Role.PATIENT, "Europe/Berlin"),
]
LOGINS_FILE = "demo-logins.txt"


def _read_logins(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines:
        if line.startswith("#") or " " not in line:
            continue
        user, password = line.split(" ", 1)
        out[user] = password
    return out


def seed(db: Database, data_dir: Path, cost: ScryptCost,
         keyring: MasterKeyring | None = None) -> list[tuple[str, str, str]]:
    """Create the demo accounts that are missing, and (with the master keyring, to seal
    notes) the demo practice records; returns (username, password, role) rows."""
    logins_path = data_dir / LOGINS_FILE
    logins = _read_logins(logins_path)
    rows = []
    for username, name, role, tz in DEMO_PEOPLE:
        if accounts.find_user(db, username) is None:
            password = "demo-" + secrets.token_urlsafe(9)
            accounts.create_user(db, username, password, role, name, tz,
                                 actor=Actor.system(), cost=cost)
            logins[username] = password
        rows.append((username, logins.get(username, "(set before; see your notes)"), role.value))
    text = "# Haven demo logins (demo data only; never use --demo for real patients)\n"
    text += "".join(f"{u} {p}\n" for u, p in logins.items())
    fd = os.open(logins_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if keyring is not None:
        seed_practice(db, keyring)
    seed_groups(db)
    return rows


PRACTICE_FLAG = "demo_practice_seeded"


def seed_practice(db: Database, keyring: MasterKeyring, *,
                  now: datetime | None = None) -> bool:
    """The demo practice, once per database: the therapist's patients, consent signed, a past
    session with a signed (shared) progress note and a draft, and an upcoming weekly session.
    Returns False when it was already there."""
    from therapy import appointments, care, consent, notes

    if db.execute("SELECT 1 FROM meta WHERE key = ?", [PRACTICE_FLAG]).fetchone():
        return False
    therapist = accounts.find_user(db, "therapist")
    patient = accounts.find_user(db, "patient")
    patient2 = accounts.find_user(db, "patient2")
    if not (therapist and patient and patient2):
        return False
    now = now or datetime.now(UTC)
    system = Actor.system()
    t_actor, p_actor = Actor(therapist.id, "demo"), Actor(patient.id, "demo")
    with db.atomic():
        care.link(db, therapist.id, patient.id, actor=system)
        care.link(db, therapist.id, patient2.id, actor=system)
        for doc in consent.current_documents():
            if not consent.has_active(db, patient.id, doc.id):
                consent.sign(db, patient, doc.id, doc.version, doc.sha256,
                             patient.display_name, actor=p_actor)
        tele = consent.document(consent.TELEHEALTH_DOCUMENT)
        if not consent.has_active(db, patient2.id, tele.id):
            # Kit has not consented to notes yet: the therapist sees why notes are refused.
            consent.sign(db, patient2, tele.id, tele.version, tele.sha256,
                         patient2.display_name, actor=Actor(patient2.id, "demo"))
        zone = therapist.time_zone or "Europe/London"
        local_now = now.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        past = (local_now - timedelta(days=7)).replace(hour=17, minute=0, second=0,
                                                       microsecond=0)
        past_id = appointments.schedule(db, therapist, patient.id,
                                        past.isoformat(timespec="minutes"), zone, 50,
                                        environment_id=None, actor=t_actor)
        signed = notes.create_note(
            db, keyring, therapist, patient.id, kind="progress", template="soap",
            sections={
                "subjective": "Sam reports sleeping better since starting the evening "
                              "wind-down routine; work stress still high on Mondays.",
                "objective": "Calm, engaged, good eye contact on camera-free voice session.",
                "assessment": "Gradual improvement in sleep; anxiety peaks are predictable.",
                "plan": "Keep the routine; try the 4-7-8 breathing exercise before Monday "
                        "meetings; review in one week.",
            },
            shared_with_patient=True, appointment_id=past_id, actor=t_actor)
        notes.sign_note(db, therapist, signed.id, actor=t_actor)
        notes.create_note(
            db, keyring, therapist, patient.id, kind="psychotherapy", template="free",
            sections={"text": "Draft: themes of perfectionism keep returning; explore "
                              "family expectations next time."},
            appointment_id=past_id, actor=t_actor)
        upcoming = (local_now + timedelta(days=1)).replace(hour=18, minute=0, second=0,
                                                           microsecond=0)
        appointments.schedule(db, therapist, patient.id,
                              upcoming.isoformat(timespec="minutes"), zone, 50, weekly=True,
                              occurrences=12, environment_id=None, actor=t_actor)
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [PRACTICE_FLAG, "1"])
    return True


GROUPS_FLAG = "demo_groups_seeded"
DEMO_GROUP_1 = "Evening calm: anxiety peer support"
DEMO_GROUP_2 = "Carers' circle (Berlin)"


def seed_groups(db: Database, *, now: datetime | None = None) -> bool:
    """The demo peer groups, once per database, and at every start a meeting of the first
    group that opens within the hour. Returns False when the groups were already there.

    * a listed, open group meeting weekly in America/New_York, led by ``facilitator``, with
      ``member`` and ``member2``; one meeting a few weeks out is cancelled;
    * an invite-only group meeting every other week in Europe/Berlin that asks to join,
      with ``member2`` in it and a request from ``patient2`` waiting for the facilitator.
    """
    from groups import conduct, directory, membership, schedule
    from groups.directory import GroupSettings
    from groups.recurrence import format_local, rule_for_start

    now = now or datetime.now(UTC)
    if "group_members" not in db.table_names():
        return False  # a database without the groups package's migrations
    seeded = False
    if not db.execute("SELECT 1 FROM meta WHERE key = ?", [GROUPS_FLAG]).fetchone():
        admin = accounts.find_user(db, "admin")
        fac = accounts.find_user(db, "facilitator")
        m1, m2 = accounts.find_user(db, "member"), accounts.find_user(db, "member2")
        kit = accounts.find_user(db, "patient2")
        if not (admin and fac and m1 and m2 and kit):
            return False
        a_admin, a_fac = Actor(admin.id, "demo"), Actor(fac.id, "demo")
        with db.atomic():
            g1 = directory.create_group(db, admin, GroupSettings(
                name=DEMO_GROUP_1,
                description="A calm weekly hour for people living with anxiety. We check "
                            "in, share what helped this week, and end with a short "
                            "breathing exercise. Listening only is welcome.",
                tags=["anxiety", "stress"], visibility="listed", join_policy="open",
                capacity=12, environment_id="beach", time_zone="America/New_York",
                auto_admit=False), lead_user_id=fac.id, actor=a_admin)
            ny = ZoneInfo("America/New_York")
            first = (now.astimezone(ny) - timedelta(days=7)).replace(
                hour=19, minute=0, second=0, microsecond=0, tzinfo=None)
            schedule.set_schedule(db, fac, g1, rule_for_start("weekly", first),
                                  format_local(first), 60, actor=a_fac)
            membership.update_self(db, fac, g1, pseudonym="Sky (facilitator)", actor=a_fac)
            cur = conduct.current(db, g1)
            for person, name, color in ((m1, "Juniper", "#a8d5c9"), (m2, "Wren", "#c7b8ea")):
                membership.join(db, person, g1, pseudonym=name, color=color,
                                conduct_version=cur.version, conduct_sha256=cur.sha256,
                                actor=Actor(person.id, "demo"))
            g1_row = {"id": g1, "time_zone": "America/New_York"}
            later = schedule.upcoming(db, g1_row, after=now + timedelta(days=20), limit=1)
            if later:
                schedule.cancel_one(db, fac, g1, later[0].key, "Holiday week: no meeting",
                                    actor=a_fac)

            g2 = directory.create_group(db, admin, GroupSettings(
                name=DEMO_GROUP_2,
                description="For people caring for a family member. Every other Wednesday "
                            "evening, Berlin time. By invitation.",
                tags=["carers", "family"], visibility="invite_only", join_policy="approval",
                capacity=8, environment_id="forest", time_zone="Europe/Berlin",
                auto_admit=True), lead_user_id=fac.id, actor=a_admin)
            berlin = ZoneInfo("Europe/Berlin")
            local = now.astimezone(berlin).replace(tzinfo=None)
            wednesday = (local + timedelta(days=(2 - local.weekday()) % 7)).replace(
                hour=19, minute=30, second=0, microsecond=0)
            schedule.set_schedule(db, fac, g2, rule_for_start("biweekly", wednesday),
                                  format_local(wednesday), 90, actor=a_fac)
            cur2 = conduct.current(db, g2)
            token, _ = directory.create_invite(db, fac, g2, actor=a_fac)
            for person, name in ((m2, "Linden"), (kit, "Kestrel")):
                membership.join(db, person, g2, pseudonym=name, color="#9fc4e8",
                                conduct_version=cur2.version, conduct_sha256=cur2.sha256,
                                invite=token, actor=Actor(person.id, "demo"))
            m2_row = next(r for r in db.query(
                "SELECT id FROM group_members WHERE group_id = ? AND user_id = ?", [g2, m2.id]))
            membership.decide_request(db, fac, g2, m2_row["id"], True, actor=a_fac)
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", [GROUPS_FLAG, "1"])
        seeded = True
    refresh_demo_meeting(db, now=now)
    return seeded


def refresh_demo_meeting(db: Database, *, now: datetime | None = None) -> str | None:
    """Make sure a meeting of the first demo group opens within the hour: when none starts
    in the next 60 minutes, move the next one to start in about 15. Returns its key."""
    from groups import access, schedule
    from groups.recurrence import format_local

    now = now or datetime.now(UTC)
    rows = list(db.query("SELECT id FROM groups WHERE name = ?", [DEMO_GROUP_1]))
    fac = accounts.find_user(db, "facilitator")
    if not rows or fac is None:
        return None
    group = access.group_row(db, rows[0]["id"])
    soon = [o for o in schedule.upcoming(db, group, after=now - timedelta(minutes=30), days=8)
            if now - timedelta(minutes=30) <= o.start_utc <= now + timedelta(minutes=60)]
    if soon:
        return soon[0].key
    opened = {r["original_local"] for r in db.query(
        "SELECT original_local FROM group_meetings WHERE group_id = ?", [group["id"]])}
    for occ in schedule.upcoming(db, group, after=now, days=60):
        if format_local(occ.original) in opened:
            continue
        start = (now + timedelta(minutes=20)).astimezone(ZoneInfo(group["time_zone"]))
        start = start.replace(minute=start.minute - start.minute % 5, second=0,
                              microsecond=0, tzinfo=None)
        schedule.move_one(db, fac, group["id"], occ.key, format_local(start),
                          "Moved earlier so you can try it now (demo)",
                          actor=Actor(fac.id, "demo"))
        return occ.key
    return None
