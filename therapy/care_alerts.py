"""A patient's private alert to their therapists ("let my therapist know I'm struggling"),
the 1:1 counterpart of groups.safety's alerts. Only the patient's care team sees it; the
message is sealed under the patient's key (so erasing the patient shreds it); sending,
reading and following up are audited."""

from __future__ import annotations

from sqlite_utils import Database

from therapy import audit, care, permissions, sealing
from therapy.accounts import AccountError, User, ValidationError, get_user
from therapy.audit import Actor
from therapy.keyfile import MasterKeyring
from therapy.permissions import Action

MESSAGE_MAX = 2000


class CareAlertError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def send(db: Database, ring: MasterKeyring, patient: User, message: object, *,
         actor: Actor) -> dict:
    if message is not None and not isinstance(message, str):
        raise ValidationError("message", "message must be text")
    text = (message or "").replace("\r\n", "\n").strip()
    if len(text) > MESSAGE_MAX:
        raise ValidationError("message", f"message is at most {MESSAGE_MAX} characters")
    with db.atomic():
        permissions.require(Action.CARE_ALERT_SEND, care.subject(patient),
                            care.patient_facts(db, patient, patient.id))
        if not care.therapists_of(db, patient.id):
            raise CareAlertError("no_therapist", "you have no therapist in Haven yet")
        row_id = db.table("care_alerts").insert({
            "patient_id": patient.id, "body": b"", "status": "open",
            "created_at": audit.now_iso(), "handled_at": None, "handled_by": None}).last_pk
        db.execute("UPDATE care_alerts SET body = ? WHERE id = ?", [sealing.seal_for_patient(
            db, ring, patient.id, "care_alerts", row_id, "body", text), row_id])
        audit.record(db, actor, "care_alert.send", "care_alerts", row_id,
                     patient_id=patient.id)
        created = db.execute("SELECT created_at FROM care_alerts WHERE id = ?",
                             [row_id]).fetchone()[0]
        return {"id": row_id, "status": "open", "created_at": created}


# --- in a 1:1 session's room (the voice hub) ----------------------------------------------

def token_user(db: Database, token_id: str) -> User | None:
    """The account a room's join token was issued to (None: an anonymous token)."""
    row = db.execute("SELECT user_id FROM join_tokens WHERE id = ?", [token_id]).fetchone()
    if row is None or row[0] is None:
        return None
    try:
        return get_user(db, row[0])
    except AccountError:  # disabled since
        return None


def therapist_tokens(db: Database, patient_id: int, token_ids: list[str]) -> dict[str, int]:
    """Which of these join tokens belong to one of the patient's therapists (token id ->
    the therapist's user id)."""
    team = {t.id for t in care.therapists_of(db, patient_id)}
    out = {}
    for tid in token_ids:
        row = db.execute("SELECT user_id FROM join_tokens WHERE id = ?", [tid]).fetchone()
        if row and row[0] in team:
            out[tid] = row[0]
    return out


def record_delivery(db: Database, alert_id: int, patient_id: int, therapist_ids: list[int], *,
                    actor: Actor) -> None:
    """The voice hub showed the alert's text live to these therapists: audited as a read."""
    with db.atomic():
        audit.record(db, actor, "care_alert.delivered", "care_alerts", alert_id,
                     patient_id=patient_id, to=sorted(therapist_ids))


def for_therapist(db: Database, ring: MasterKeyring, therapist: User, *,
                  actor: Actor) -> list[dict]:
    """The alerts of this therapist's patients, newest open first; opened and audited."""
    out = []
    with db.atomic():
        for patient in care.patients_of(db, therapist.id):
            facts = care.patient_facts(db, therapist, patient.id)
            if not permissions.allowed(Action.CARE_ALERT_VIEW, care.subject(therapist), facts):
                continue
            for r in db.query("SELECT * FROM care_alerts WHERE patient_id = ? ORDER BY id DESC "
                              "LIMIT 50", [patient.id]):
                try:
                    text = sealing.open_for_patient(db, ring, patient.id, "care_alerts",
                                                    r["id"], "body", r["body"])
                except sealing.SealingError:
                    text = None
                out.append({"id": r["id"], "patient_id": patient.id,
                            "patient": patient.display_name, "message": text,
                            "status": r["status"], "created_at": r["created_at"],
                            "handled_at": r["handled_at"]})
                audit.record(db, actor, "care_alert.read", "care_alerts", r["id"],
                             patient_id=patient.id)
    out.sort(key=lambda a: (a["status"] != "open", a["created_at"]), reverse=False)
    return out


def set_status(db: Database, therapist: User, alert_id: int, status: str, *,
               actor: Actor) -> dict:
    if status not in ("open", "handled"):
        raise ValidationError("status", "status must be open or handled")
    with db.atomic():
        rows = list(db.query("SELECT * FROM care_alerts WHERE id = ?", [alert_id])) \
            if 0 < alert_id < 2**53 else []
        if not rows:
            raise CareAlertError("not_found", "no such alert")
        facts = care.patient_facts(db, therapist, rows[0]["patient_id"])
        if not permissions.allowed(Action.CARE_ALERT_VIEW, care.subject(therapist), facts):
            raise CareAlertError("not_found", "no such alert")  # outsiders learn nothing
        handled = status == "handled"
        db.table("care_alerts").update(alert_id, {
            "status": status, "handled_at": audit.now_iso() if handled else None,
            "handled_by": therapist.id if handled else None})
        audit.record(db, actor, "care_alert.status", "care_alerts", alert_id,
                     patient_id=rows[0]["patient_id"], status=status)
        return {"id": alert_id, "status": status}
