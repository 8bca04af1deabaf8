"""``haven serve --demo``: a small demo clinic so a newcomer can click through at once.

Demo passwords are random per data folder, written to ``demo-logins.txt`` (mode 0600) in it
and printed at every start. Seeding is idempotent: accounts that exist are left alone."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlite_utils import Database

from therapy import accounts
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor

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


def seed(db: Database, data_dir: Path, cost: ScryptCost) -> list[tuple[str, str, str]]:
    """Create the demo accounts that are missing; returns (username, password, role) rows."""
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
    return rows
