"""Session notes: templates, drafts, signing and locking, addenda, the patient's record.

* Progress notes are part of the record (the care team can read signed ones; the author may
  share them with the patient). Psychotherapy notes are read by their author only.
* A draft can be edited by its author; signing locks it for good (a database trigger refuses
  any change to a signed note). Corrections are addenda.
* Every body and addendum is sealed (therapy.sealing) with a fresh data key, bound to its
  table, row id and field. Nothing here ever puts note text in the audit log.
* Every create, read, edit, sign, addendum and export is audited in the same transaction.

Who may do what is decided by therapy.permissions; this module gathers the facts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from sqlite_utils import Database

from therapy import audit, care, consent, permissions, sealing
from therapy.accounts import User
from therapy.audit import Actor
from therapy.keyfile import MasterKeyring
from therapy.permissions import Action, Facts, NoteKind

TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "soap": (("subjective", "Subjective"), ("objective", "Objective"),
             ("assessment", "Assessment"), ("plan", "Plan")),
    "dap": (("data", "Data"), ("assessment", "Assessment"), ("plan", "Plan")),
    "birp": (("behavior", "Behavior"), ("intervention", "Intervention"),
             ("response", "Response"), ("plan", "Plan")),
    "free": (("text", "Note"),),
}
TEMPLATE_NAMES = {"soap": "SOAP", "dap": "DAP", "birp": "BIRP", "free": "Free text"}
SECTION_MAX = 20_000
ADDENDUM_MAX = 10_000


class NoteError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def validate_sections(template: str, sections: object) -> dict[str, str]:
    if template not in TEMPLATES:
        raise NoteError("invalid_field", f"template must be one of {', '.join(TEMPLATES)}",
                        "template")
    if not isinstance(sections, dict):
        raise NoteError("invalid_field", "sections must be an object of text fields",
                        "sections")
    names = [n for n, _ in TEMPLATES[template]]
    unknown = sorted(set(sections) - set(names))
    if unknown:
        raise NoteError("invalid_field",
                        f"the {TEMPLATE_NAMES[template]} template has no section "
                        f"{unknown[0][:40]!r}", "sections")
    out = {}
    for name in names:
        value = sections.get(name, "")
        if not isinstance(value, str):
            raise NoteError("invalid_field", f"section {name} must be text", "sections")
        if len(value) > SECTION_MAX:
            raise NoteError("invalid_field", f"section {name} is longer than {SECTION_MAX} "
                            "characters", "sections")
        out[name] = value.replace("\r\n", "\n")
    return out


@dataclass(frozen=True)
class NoteMeta:
    id: str
    patient_id: int
    author_id: int
    appointment_id: int | None
    kind: NoteKind
    template: str
    status: str
    shared_with_patient: bool
    created_at: str
    updated_at: str
    signed_at: str | None

    @classmethod
    def from_row(cls, row: dict) -> NoteMeta:
        return cls(row["id"], row["patient_id"], row["author_id"], row["appointment_id"],
                   NoteKind(row["kind"]), row["template"], row["status"],
                   bool(row["shared_with_patient"]), row["created_at"], row["updated_at"],
                   row["signed_at"])

    @property
    def signed(self) -> bool:
        return self.status == "signed"

    def public(self) -> dict:
        return {
            "id": self.id, "patient_id": self.patient_id, "author_id": self.author_id,
            "appointment_id": self.appointment_id, "kind": self.kind.value,
            "template": self.template, "template_name": TEMPLATE_NAMES[self.template],
            "status": self.status, "shared_with_patient": self.shared_with_patient,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "signed_at": self.signed_at,
        }


def _meta(db: Database, note_id: str) -> NoteMeta:
    rows = list(db.query("SELECT * FROM notes WHERE id = ?", [str(note_id)[:64]]))
    if not rows:
        raise NoteError("not_found", "no such note")
    return NoteMeta.from_row(rows[0])


def note_facts(db: Database, user: User, meta: NoteMeta) -> Facts:
    base = care.patient_facts(db, user, meta.patient_id)
    return Facts(
        is_self=base.is_self, care_team=base.care_team, notes_consent=base.notes_consent,
        erased=base.erased, is_author=user.id == meta.author_id, note_kind=meta.kind,
        note_signed=meta.signed, note_shared=meta.shared_with_patient,
    )


def _require(db: Database, action: Action, user: User, meta: NoteMeta) -> None:
    permissions.require(action, care.subject(user), note_facts(db, user, meta))


def _seal_body(db: Database, ring: MasterKeyring, patient_id: int, note_id: str,
               sections: dict[str, str]) -> bytes:
    return sealing.seal_for_patient(db, ring, patient_id, "notes", note_id, "body",
                                    json.dumps(sections, ensure_ascii=False, sort_keys=True))


def create_note(db: Database, ring: MasterKeyring, author: User, patient_id: int, *,
                kind: str, template: str, sections: dict, shared_with_patient: bool = False,
                appointment_id: int | None = None, actor: Actor) -> NoteMeta:
    try:
        kind_value = NoteKind(kind)
    except ValueError:
        raise NoteError("invalid_field", "kind must be progress or psychotherapy",
                        "kind") from None
    clean = validate_sections(template, sections)
    if kind_value == NoteKind.PSYCHOTHERAPY and shared_with_patient:
        raise NoteError("invalid_field", "psychotherapy notes are never shared",
                        "shared_with_patient")
    with db.atomic():
        facts = care.patient_facts(db, author, patient_id)
        permissions.require(Action.NOTE_CREATE, care.subject(author), facts)
        if appointment_id is not None:
            ok = db.execute("SELECT 1 FROM appointments WHERE id = ? AND patient_id = ?",
                            [appointment_id, patient_id]).fetchone()
            if not ok:
                raise NoteError("invalid_field", "that appointment is not this patient's",
                                "appointment_id")
        note_id = "n-" + secrets.token_hex(8)
        now = audit.now_iso()
        db.table("notes").insert({
            "id": note_id, "patient_id": patient_id, "author_id": author.id,
            "appointment_id": appointment_id, "kind": kind_value.value, "template": template,
            "status": "draft", "shared_with_patient": int(bool(shared_with_patient)),
            "body": _seal_body(db, ring, patient_id, note_id, clean),
            "created_at": now, "updated_at": now, "signed_at": None,
        })
        audit.record(db, actor, "note.create", "notes", note_id, patient_id=patient_id,
                     kind=kind_value.value, template=template)
        return _meta(db, note_id)


def update_note(db: Database, ring: MasterKeyring, user: User, note_id: str, *,
                sections: dict | None = None, shared_with_patient: bool | None = None,
                actor: Actor) -> NoteMeta:
    with db.atomic():
        meta = _meta(db, note_id)
        _require(db, Action.NOTE_EDIT, user, meta)
        changes: dict = {"updated_at": audit.now_iso()}
        if sections is not None:
            changes["body"] = _seal_body(db, ring, meta.patient_id, meta.id,
                                         validate_sections(meta.template, sections))
        if shared_with_patient is not None:
            if meta.kind == NoteKind.PSYCHOTHERAPY and shared_with_patient:
                raise NoteError("invalid_field", "psychotherapy notes are never shared",
                                "shared_with_patient")
            changes["shared_with_patient"] = int(shared_with_patient)
        db.table("notes").update(meta.id, changes)
        audit.record(db, actor, "note.update", "notes", meta.id, patient_id=meta.patient_id,
                     body_changed=sections is not None)
        return _meta(db, meta.id)


def sign_note(db: Database, user: User, note_id: str, *, actor: Actor) -> NoteMeta:
    with db.atomic():
        meta = _meta(db, note_id)
        _require(db, Action.NOTE_SIGN, user, meta)
        now = audit.now_iso()
        db.table("notes").update(meta.id, {"status": "signed", "signed_at": now,
                                           "updated_at": now})
        audit.record(db, actor, "note.sign", "notes", meta.id, patient_id=meta.patient_id)
        return _meta(db, meta.id)


def add_addendum(db: Database, ring: MasterKeyring, user: User, note_id: str, text: str, *,
                 actor: Actor) -> str:
    if not isinstance(text, str) or not text.strip():
        raise NoteError("invalid_field", "an addendum needs some text", "text")
    if len(text) > ADDENDUM_MAX:
        raise NoteError("invalid_field", f"an addendum is at most {ADDENDUM_MAX} characters",
                        "text")
    with db.atomic():
        meta = _meta(db, note_id)
        _require(db, Action.NOTE_ADDENDUM, user, meta)
        add_id = "a-" + secrets.token_hex(8)
        db.table("note_addenda").insert({
            "id": add_id, "note_id": meta.id, "author_id": user.id,
            "created_at": audit.now_iso(),
            "body": sealing.seal_for_patient(db, ring, meta.patient_id, "note_addenda",
                                             add_id, "body", text.replace("\r\n", "\n")),
        })
        audit.record(db, actor, "note.addendum", "note_addenda", add_id, note_id=meta.id,
                     patient_id=meta.patient_id)
        return add_id


def _open_note(db: Database, ring: MasterKeyring, meta: NoteMeta) -> dict:
    row = db.table("notes").get(meta.id)
    sections = json.loads(sealing.open_for_patient(db, ring, meta.patient_id, "notes", meta.id,
                                                   "body", row["body"]))
    addenda = []
    for a in db.query("SELECT * FROM note_addenda WHERE note_id = ? ORDER BY created_at, id",
                      [meta.id]):
        addenda.append({
            "id": a["id"], "author_id": a["author_id"], "created_at": a["created_at"],
            "text": sealing.open_for_patient(db, ring, meta.patient_id, "note_addenda",
                                             a["id"], "body", a["body"]),
        })
    names = dict(TEMPLATES[meta.template])
    return {
        **meta.public(),
        "sections": [{"name": n, "label": names[n], "text": sections.get(n, "")}
                     for n, _ in TEMPLATES[meta.template]],
        "addenda": addenda,
    }


def read_note(db: Database, ring: MasterKeyring, user: User, note_id: str, *,
              actor: Actor) -> dict:
    """Open a note for ``user`` (permission-checked) and audit the read in one transaction.

    A refused read is audited too. Run it on the writer (it writes the audit row)."""
    try:
        with db.atomic():
            meta = _meta(db, note_id)
            _require(db, Action.NOTE_READ, user, meta)
            opened = _open_note(db, ring, meta)
            audit.record(db, actor, "note.read", "notes", meta.id, patient_id=meta.patient_id)
        return opened
    except permissions.Denied as denied:
        meta = _meta(db, note_id)
        audit.record(db, actor, "note.read_denied", "notes", meta.id,
                     patient_id=meta.patient_id, reason=denied.code)
        raise


def list_notes(db: Database, user: User, patient_id: int) -> list[NoteMeta]:
    """The notes about a patient that ``user`` may read (metadata only, nothing opened)."""
    permissions.require(Action.NOTE_LIST, care.subject(user),
                        care.patient_facts(db, user, patient_id))
    out = []
    for row in db.query("SELECT * FROM notes WHERE patient_id = ? ORDER BY created_at DESC",
                        [patient_id]):
        meta = NoteMeta.from_row(row)
        if permissions.allowed(Action.NOTE_READ, care.subject(user),
                               note_facts(db, user, meta)):
            out.append(meta)
    return out


def export_record(db: Database, ring: MasterKeyring, patient: User, *, actor: Actor,
                  format: str = "json") -> dict:
    """Everything in the patient's record that is open to them: the progress notes shared
    with them (with addenda), their consents and their appointments. Audited."""
    from therapy import appointments

    with db.atomic():
        facts = care.patient_facts(db, patient, patient.id)
        permissions.require(Action.RECORD_EXPORT, care.subject(patient), facts)
        notes = []
        if not facts.erased:
            for meta in list_notes(db, patient, patient.id):
                opened = _open_note(db, ring, meta)
                opened["author"] = _display_name(db, meta.author_id)
                for a in opened["addenda"]:
                    a["author"] = _display_name(db, a["author_id"])
                notes.append(opened)
                audit.record(db, actor, "note.read", "notes", meta.id, patient_id=patient.id,
                             via="export")
        record = {
            "format": "haven-record/1",
            "exported_at": audit.now_iso(),
            "patient": patient.public(),
            "therapists": [t.display_name for t in care.therapists_of(db, patient.id)],
            "consents": consent.signatures(db, patient, patient.id),
            "appointments": [o.public(patient.time_zone) for o in appointments.occurrences_for(
                db, patient, include_past=True)],
            "progress_notes": notes,
            "erased": facts.erased,
        }
        audit.record(db, actor, "record.export", "users", patient.id, patient_id=patient.id,
                     format=format, note_count=len(notes))
    return record


def _display_name(db: Database, user_id: int) -> str:
    row = db.execute("SELECT display_name FROM users WHERE id = ?", [user_id]).fetchone()
    return row[0] if row else "(removed)"
