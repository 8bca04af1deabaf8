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
