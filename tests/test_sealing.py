"""Envelope encryption at rest: the SQLite files alone hold no note text; ciphertexts are
bound to their row, field and key; flipped bytes fail; shredded patients stay unreadable."""

from __future__ import annotations

import pytest

from therapy import accounts, consent, notes, schema, sealing
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor
from therapy.datadir import prepare
from therapy.permissions import Denied
from therapy.storage import open_database

COST = ScryptCost(n=2**4, r=1, p=1)
SECRET = "Patient disclosed the lighthouse dream again"


def sign_all(db, patient):
    for doc in consent.current_documents():
        consent.sign(db, patient, doc.id, doc.version, doc.sha256, "Sam Patient",
                     actor=Actor(patient.id, "t"))


@pytest.fixture
def practice(tmp_path):
    from therapy import care

    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    therapist = accounts.create_user(db, "therapist", "correct horse battery", Role.THERAPIST,
                                     cost=COST)
    patient = accounts.create_user(db, "patient", "correct horse battery", Role.PATIENT,
                                   cost=COST)
    care.link(db, therapist.id, patient.id, actor=Actor.system())
    sign_all(db, patient)
    yield data, db, therapist, patient
    db.close()


def write_note(db, ring, therapist, patient, text=SECRET, kind="progress", shared=True):
    return notes.create_note(db, ring, therapist, patient.id, kind=kind, template="soap",
                             sections={"subjective": text, "plan": "continue weekly"},
                             shared_with_patient=shared, actor=Actor(therapist.id, "t"))


def raw_bytes(data) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = data.db_path.with_name(data.db_path.name + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def test_database_files_alone_hold_no_note_text(practice):
    data, db, therapist, patient = practice
    ring = data.keyring
    meta = write_note(db, ring, therapist, patient)
    notes.update_note(db, ring, therapist, meta.id,
                      sections={"subjective": SECRET + " (edited)", "plan": "Lighthouse plan"},
                      actor=Actor(therapist.id, "t"))
    notes.sign_note(db, therapist, meta.id, actor=Actor(therapist.id, "t"))
    notes.add_addendum(db, ring, therapist, meta.id, "Addendum about the lighthouse keeper",
                       actor=Actor(therapist.id, "t"))
    opened = notes.read_note(db, ring, therapist, meta.id, actor=Actor(therapist.id, "t"))
    assert opened["sections"][0]["text"] == SECRET + " (edited)"
    # Before the checkpoint: the WAL and the main file together.
    before = raw_bytes(data)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = raw_bytes(data)
    for blob in (before, after):
        assert len(blob) > 10_000
        for needle in ("lighthouse", "Lighthouse", "continue weekly", "keeper"):
            assert needle.encode() not in blob
            assert needle.encode("utf-16-le") not in blob
    # The key file is outside the database and its key bytes are not inside either.
    assert ring.current_key not in after
    pk_row = next(iter(db.query("SELECT * FROM patient_keys")))
    pk = sealing.patient_key(db, ring, patient.id)
    assert pk.key not in after and pk_row["wrapped"] in after


def test_ciphertext_copied_to_another_row_fails(practice):
    data, db, therapist, patient = practice
    ring = data.keyring
    a = write_note(db, ring, therapist, patient, "first note text")
    b = write_note(db, ring, therapist, patient, "second note text")
    body_a = db.table("notes").get(a.id)["body"]
    db.execute("UPDATE notes SET body = ? WHERE id = ?", [body_a, b.id])
    with pytest.raises(sealing.SealingError):
        notes.read_note(db, ring, therapist, b.id, actor=Actor(therapist.id, "t"))
    # The original still opens where it belongs.
    assert notes.read_note(db, ring, therapist, a.id, actor=Actor(therapist.id, "t"))[
        "sections"][0]["text"] == "first note text"


def test_ciphertext_moved_to_another_field_or_table_fails(practice):
    data, db, therapist, patient = practice
    pk = sealing.patient_key(db, data.keyring, patient.id, create=True)
    blob = sealing.seal(pk, "notes", "n-1", "body", "hello")
    assert sealing.open_sealed(pk, "notes", "n-1", "body", blob) == "hello"
    for table, row, field in [("notes", "n-1", "title"), ("note_addenda", "n-1", "body"),
                              ("notes", "n-2", "body")]:
        with pytest.raises(sealing.SealingError):
            sealing.open_sealed(pk, table, row, field, blob)


def test_ciphertext_of_another_patient_fails(practice):
    data, db, therapist, patient = practice
    from therapy import care

    other = accounts.create_user(db, "other", "correct horse battery", Role.PATIENT, cost=COST)
    care.link(db, therapist.id, other.id, actor=Actor.system())
    sign_all(db, other)
    a = write_note(db, data.keyring, therapist, patient, "patient one")
    b = write_note(db, data.keyring, therapist, other, "patient two")
    body_a = db.table("notes").get(a.id)["body"]
    db.execute("UPDATE notes SET body = ? WHERE id = ?", [body_a, b.id])
    with pytest.raises(sealing.SealingError):
        notes.read_note(db, data.keyring, therapist, b.id, actor=Actor(therapist.id, "t"))


def test_every_flipped_byte_fails(practice):
    data, db, therapist, patient = practice
    pk = sealing.patient_key(db, data.keyring, patient.id, create=True)
    blob = sealing.seal(pk, "notes", "n-1", "body", "short text")
    for i in range(len(blob)):
        for bit in (0x01, 0x80):
            bad = bytearray(blob)
            bad[i] ^= bit
            with pytest.raises(sealing.SealingError):
                sealing.open_sealed(pk, "notes", "n-1", "body", bytes(bad))
    with pytest.raises(sealing.SealingError):
        sealing.open_sealed(pk, "notes", "n-1", "body", blob[:-1])


def test_flipped_byte_in_wrapped_patient_key_fails(practice):
    data, db, therapist, patient = practice
    meta = write_note(db, data.keyring, therapist, patient)
    row = next(iter(db.query("SELECT * FROM patient_keys")))
    bad = bytearray(row["wrapped"])
    bad[20] ^= 1
    db.execute("UPDATE patient_keys SET wrapped = ? WHERE id = ?", [bytes(bad), row["id"]])
    with pytest.raises(sealing.SealingError):
        notes.read_note(db, data.keyring, therapist, meta.id, actor=Actor(therapist.id, "t"))


def test_wrapped_patient_key_bound_to_patient(practice):
    data, db, therapist, patient = practice
    pk = sealing.patient_key(db, data.keyring, patient.id, create=True)
    row = dict(db.table("patient_keys").get(pk.id))
    row["patient_id"] = patient.id + 1
    with pytest.raises(sealing.SealingError):
        sealing.unwrap_patient_key(data.keyring, row)


def test_each_record_gets_a_fresh_data_key_and_nonce(practice):
    data, db, therapist, patient = practice
    pk = sealing.patient_key(db, data.keyring, patient.id, create=True)
    a = sealing.seal(pk, "notes", "n-1", "body", "same text")
    b = sealing.seal(pk, "notes", "n-1", "body", "same text")
    assert a != b
    assert len({a[-40:], b[-40:]}) == 2


def test_crypto_shredded_patient_cannot_be_read(practice):
    data, db, therapist, patient = practice
    ring = data.keyring
    meta = write_note(db, ring, therapist, patient)
    notes.sign_note(db, therapist, meta.id, actor=Actor(therapist.id, "t"))
    wrapped = next(iter(db.query("SELECT wrapped FROM patient_keys")))["wrapped"]
    sealing.shred_patient(db, patient.id, actor=Actor(None, "admin"))
    with pytest.raises(Denied) as exc:
        notes.read_note(db, ring, therapist, meta.id, actor=Actor(therapist.id, "t"))
    assert exc.value.code == "erased"
    # Even bypassing the permission layer, nothing can open it any more.
    blob = db.table("notes").get(meta.id)["body"]
    with pytest.raises(sealing.PatientKeyDestroyed):
        sealing.open_for_patient(db, ring, patient.id, "notes", meta.id, "body", blob)
    # No new key is ever made for them, so no new notes either.
    with pytest.raises(Denied) as exc:
        write_note(db, ring, therapist, patient)
    assert exc.value.code == "erased"
    with pytest.raises(sealing.PatientKeyDestroyed):
        sealing.seal_for_patient(db, ring, patient.id, "notes", "x", "body", "text")
    # The wrapped key bytes are gone from the files too (secure_delete + checkpoint).
    assert wrapped not in raw_bytes(data)
    rows = list(db.query("SELECT * FROM audit_log WHERE action = 'patient.crypto_shred'"))
    assert len(rows) == 1 and rows[0]["target_id"] == str(patient.id)


def test_shredding_one_patient_leaves_others_readable(practice):
    data, db, therapist, patient = practice
    from therapy import care

    other = accounts.create_user(db, "other", "correct horse battery", Role.PATIENT, cost=COST)
    care.link(db, therapist.id, other.id, actor=Actor.system())
    sign_all(db, other)
    keep = write_note(db, data.keyring, therapist, other, "stays readable")
    write_note(db, data.keyring, therapist, patient)
    sealing.shred_patient(db, patient.id, actor=Actor(None, "admin"))
    opened = notes.read_note(db, data.keyring, therapist, keep.id, actor=Actor(therapist.id, "t"))
    assert opened["sections"][0]["text"] == "stays readable"


def test_shredding_a_patient_without_a_key_blocks_future_keys(practice):
    data, db, therapist, patient = practice
    sealing.shred_patient(db, patient.id, actor=Actor(None, "admin"))
    assert sealing.patient_erased(db, patient.id)
    with pytest.raises(sealing.PatientKeyDestroyed):
        sealing.seal_for_patient(db, data.keyring, patient.id, "notes", "x", "body", "t")


def test_aad_encoding_is_unambiguous():
    assert sealing.canon("ab", "c") != sealing.canon("a", "bc")
    assert sealing.canon("notes", 12, "body") == sealing.canon("notes", "12", "body")
