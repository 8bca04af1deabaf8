"""Consent documents and signatures; notes refused without consent; drafts, signing and
locking, addenda, the patient's export; and the audit trail (library level)."""

from __future__ import annotations

import hashlib
import json

import pytest

from therapy import accounts, care, consent, notes, schema
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor
from therapy.datadir import prepare
from therapy.permissions import Denied
from therapy.storage import open_database

COST = ScryptCost(n=2**4, r=1, p=1)


@pytest.fixture
def clinic(tmp_path):
    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    t = accounts.create_user(db, "therapist", "correct horse battery", Role.THERAPIST,
                             cost=COST)
    p = accounts.create_user(db, "patient", "correct horse battery", Role.PATIENT, cost=COST)
    care.link(db, t.id, p.id, actor=Actor.system())
    yield data, db, t, p
    db.close()


def sign(db, p, doc_id):
    doc = consent.document(doc_id)
    return consent.sign(db, p, doc.id, doc.version, doc.sha256, "Sam Patient",
                        actor=Actor(p.id, "sess-p"))


def new_note(data, db, t, p, **kw):
    args = dict(kind="progress", template="soap",
                sections={"subjective": "feels better", "plan": "weekly"},
                shared_with_patient=True)
    args.update(kw)
    return notes.create_note(db, data.keyring, t, p.id, actor=Actor(t.id, "sess-t"), **args)


def test_documents_are_versioned_files_with_hashes():
    docs = consent.current_documents()
    assert [d.id for d in docs] == ["telehealth", "notes"]
    for d in docs:
        path = consent.DOCUMENTS_DIR / f"{d.id}.v{d.version}.md"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == d.sha256
        assert d.title and d.version >= 1
    blocks = consent.render_markdown(consent.document("notes").text)
    assert blocks[0][0] == "h1" and any(kind == "ul" for kind, _ in blocks)


def test_signature_records_name_time_version_and_hash(clinic):
    data, db, t, p = clinic
    sig_id = sign(db, p, "notes")
    row = db.table("consent_signatures").get(sig_id)
    doc = consent.document("notes")
    assert (row["typed_name"], row["version"], row["sha256"]) == ("Sam Patient", doc.version,
                                                                 doc.sha256)
    assert row["signed_at"] and row["signed_session"] == "sess-p"
    with pytest.raises(consent.ConsentError) as exc:
        sign(db, p, "notes")
    assert exc.value.code == "already_signed"
    with pytest.raises(consent.ConsentError) as exc:
        consent.sign(db, p, "notes", doc.version, "0" * 64, "Sam", actor=Actor(p.id))
    assert exc.value.code == "stale_document"
    with pytest.raises(consent.ConsentError) as exc:
        consent.sign(db, p, "telehealth", 1, consent.document("telehealth").sha256, " ",
                     actor=Actor(p.id))
    assert exc.value.field == "typed_name"
    # Only the patient signs for themself.
    with pytest.raises(Denied):
        consent.sign(db, t, "telehealth", 1, consent.document("telehealth").sha256, "Dr",
                     actor=Actor(t.id))


def test_notes_refused_without_consent_and_after_withdrawal(clinic):
    data, db, t, p = clinic
    with pytest.raises(Denied) as exc:
        new_note(data, db, t, p)
    assert exc.value.code == "consent_required" and "consent" in exc.value.message
    sign(db, p, "telehealth")
    with pytest.raises(Denied):
        new_note(data, db, t, p)  # telehealth consent is not notes consent
    sign(db, p, "notes")
    first = new_note(data, db, t, p)
    consent.withdraw(db, p, "notes", actor=Actor(p.id, "sess-p"))
    with pytest.raises(Denied) as exc:
        new_note(data, db, t, p)
    assert exc.value.code == "consent_required"
    # Notes written before stay in the record and can be finished.
    notes.sign_note(db, t, first.id, actor=Actor(t.id))
    assert notes.read_note(db, data.keyring, p, first.id, actor=Actor(p.id))["status"] == "signed"
    # Signing again restores it.
    sign(db, p, "notes")
    new_note(data, db, t, p)
    actions = [r["action"] for r in db.query(
        "SELECT action FROM audit_log WHERE action LIKE 'consent.%' ORDER BY id")]
    assert actions == ["consent.sign", "consent.sign", "consent.withdraw", "consent.sign"]
    with pytest.raises(consent.ConsentError):
        consent.withdraw(db, p, "nonexistent", actor=Actor(p.id))


def test_templates_drafts_signing_and_addenda(clinic):
    data, db, t, p = clinic
    sign(db, p, "notes")
    for template, fields in notes.TEMPLATES.items():
        sections = {name: f"{template} {name}" for name, _ in fields}
        m = new_note(data, db, t, p, template=template, sections=sections)
        opened = notes.read_note(db, data.keyring, t, m.id, actor=Actor(t.id))
        assert [s["text"] for s in opened["sections"]] == list(sections.values())
    with pytest.raises(notes.NoteError):
        new_note(data, db, t, p, template="soap", sections={"mood": "x"})
    with pytest.raises(notes.NoteError):
        new_note(data, db, t, p, template="xyz")
    with pytest.raises(notes.NoteError):
        new_note(data, db, t, p, kind="psychotherapy", shared_with_patient=True)

    m = new_note(data, db, t, p, shared_with_patient=False)
    notes.update_note(db, data.keyring, t, m.id, sections={"subjective": "revised"},
                      shared_with_patient=True, actor=Actor(t.id))
    with pytest.raises(Denied) as exc:
        notes.add_addendum(db, data.keyring, t, m.id, "too early", actor=Actor(t.id))
    assert exc.value.code == "not_signed"
    notes.sign_note(db, t, m.id, actor=Actor(t.id))
    with pytest.raises(Denied) as exc:
        notes.update_note(db, data.keyring, t, m.id, sections={"subjective": "x"},
                          actor=Actor(t.id))
    assert exc.value.code == "locked"
    with pytest.raises(Denied):
        notes.sign_note(db, t, m.id, actor=Actor(t.id))
    notes.add_addendum(db, data.keyring, t, m.id, "Correction: met on Tuesday",
                       actor=Actor(t.id))
    opened = notes.read_note(db, data.keyring, p, m.id, actor=Actor(p.id))
    assert opened["sections"][0]["text"] == "revised"
    assert [a["text"] for a in opened["addenda"]] == ["Correction: met on Tuesday"]


def test_patient_export_holds_only_shared_signed_progress_notes(clinic):
    data, db, t, p = clinic
    sign(db, p, "telehealth")
    sign(db, p, "notes")
    shared = new_note(data, db, t, p, sections={"subjective": "shared text"})
    notes.sign_note(db, t, shared.id, actor=Actor(t.id))
    new_note(data, db, t, p, sections={"subjective": "draft text"})
    private = new_note(data, db, t, p, kind="psychotherapy", shared_with_patient=False,
                       sections={"subjective": "private process text"})
    notes.sign_note(db, t, private.id, actor=Actor(t.id))
    record = notes.export_record(db, data.keyring, p, actor=Actor(p.id, "sess-p"))
    dumped = json.dumps(record)
    assert "shared text" in dumped
    assert "draft text" not in dumped and "private process text" not in dumped
    assert [n["id"] for n in record["progress_notes"]] == [shared.id]
    assert len(record["consents"]) == 2
    with pytest.raises(Denied):
        notes.export_record(db, data.keyring, t, actor=Actor(t.id))
    rows = list(db.query("SELECT * FROM audit_log WHERE action = 'record.export'"))
    assert len(rows) == 1 and rows[0]["actor_session"] == "sess-p"


def test_audit_trail_covers_note_lifecycle_without_text(clinic):
    data, db, t, p = clinic
    sign(db, p, "notes")
    m = new_note(data, db, t, p, sections={"subjective": "sensitive words here"})
    notes.read_note(db, data.keyring, t, m.id, actor=Actor(t.id, "sess-t"))
    notes.sign_note(db, t, m.id, actor=Actor(t.id, "sess-t"))
    notes.add_addendum(db, data.keyring, t, m.id, "more sensitive words", actor=Actor(t.id))
    rows = list(db.query("SELECT * FROM audit_log WHERE detail LIKE ?", [f'%{p.id}%']))
    actions = [r["action"] for r in rows]
    for wanted in ("note.create", "note.read", "note.sign", "note.addendum"):
        assert wanted in actions
    read = next(r for r in rows if r["action"] == "note.read")
    assert read["actor_user_id"] == t.id and read["actor_session"] == "sess-t"
    assert read["target_table"] == "notes" and read["target_id"] == m.id
    everything = json.dumps([dict(r) for r in db.query("SELECT * FROM audit_log")])
    assert "sensitive" not in everything


def test_demo_seed_adds_practice_records_once(tmp_path):
    from web import demo

    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    try:
        demo.seed(db, data.path, COST, data.keyring)
        demo.seed(db, data.path, COST, data.keyring)  # idempotent
        therapist = accounts.find_user(db, "therapist")
        patient = accounts.find_user(db, "patient")
        metas = notes.list_notes(db, therapist, patient.id)
        assert sorted((m.kind.value, m.status) for m in metas) == [
            ("progress", "signed"), ("psychotherapy", "draft")]
        shared = notes.list_notes(db, patient, patient.id)
        assert len(shared) == 1
        opened = notes.read_note(db, data.keyring, patient, shared[0].id, actor=Actor(patient.id))
        assert "sleeping better" in opened["sections"][0]["text"]
        from therapy import appointments

        past = appointments.occurrences_for(db, patient, include_past=True)
        upcoming = appointments.occurrences_for(db, patient)
        assert len(past) == 13 and len(upcoming) == 12
        assert consent.has_active(db, patient.id, "notes")
        kit = accounts.find_user(db, "patient2")
        assert not consent.has_active(db, kit.id, "notes")
        assert len(list(db.query("SELECT id FROM appointments"))) == 2
    finally:
        db.close()
