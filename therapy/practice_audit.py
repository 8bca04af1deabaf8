"""Reading the audit trail of the practice: a therapist for their patients, an admin for all.

Every practice audit entry carries ``patient_id`` in its detail, so one patient's trail is
a filter on it. Reading the trail is itself recorded (``audit.read``), in the same
transaction as the read.
"""

from __future__ import annotations

import json

from sqlite_utils import Database

from therapy import audit, care, permissions
from therapy.accounts import User
from therapy.audit import Actor
from therapy.permissions import Action, Facts

MAX_ROWS = 500


def trail(db: Database, viewer: User, patient_id: int | None, *, actor: Actor,
          limit: int = 200) -> list[dict]:
    """Audit entries about ``patient_id`` (or, for an admin with None, all), newest first."""
    limit = max(1, min(int(limit), MAX_ROWS))
    facts = care.patient_facts(db, viewer, patient_id) if patient_id is not None else Facts()
    permissions.require(Action.AUDIT_READ, care.subject(viewer), facts)
    with db.atomic():
        if patient_id is None:
            rows = db.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", [limit])
        else:
            rows = db.query(
                "SELECT * FROM audit_log WHERE json_extract(detail, '$.patient_id') = ? "
                "OR (target_table = 'users' AND target_id = ?) ORDER BY id DESC LIMIT ?",
                [patient_id, str(patient_id), limit])
        out = []
        names: dict[int, str] = {}
        for r in rows:
            entry = dict(r)
            entry["detail"] = json.loads(entry["detail"]) if entry["detail"] else {}
            uid = entry["actor_user_id"]
            if uid is not None and uid not in names:
                found = db.execute("SELECT display_name FROM users WHERE id = ?",
                                   [uid]).fetchone()
                names[uid] = found[0] if found else "(removed)"
            entry["actor_name"] = names.get(uid) if uid is not None else "system"
            out.append(entry)
        if patient_id is None:
            audit.record(db, actor, "audit.read", "audit_log", None, scope="all",
                         rows=len(out))
        else:
            audit.record(db, actor, "audit.read", "audit_log", None, patient_id=patient_id,
                         rows=len(out))
    return out
