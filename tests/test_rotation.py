"""Master key rotation: every note stays readable, note ciphertext is untouched, reruns are
harmless, and a run interrupted at any step is finished by running it again."""

from __future__ import annotations

import pytest

from therapy import accounts, care, consent, notes, rotation, schema, sealing
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor
from therapy.datadir import DataDirError, prepare
from therapy.keyfile import MasterKeyring, fingerprint, read_keyfile, write_keyfile
from therapy.storage import open_database

COST = ScryptCost(n=2**4, r=1, p=1)


class Crash(Exception):
    pass


@pytest.fixture
def clinic(tmp_path):
    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    therapist = accounts.create_user(db, "therapist", "correct horse battery", Role.THERAPIST,
                                     cost=COST)
    written = {}
    for i in range(4):
        patient = accounts.create_user(db, f"patient{i}", "correct horse battery",
                                       Role.PATIENT, cost=COST)
        care.link(db, therapist.id, patient.id, actor=Actor.system())
        for doc in consent.current_documents():
            consent.sign(db, patient, doc.id, doc.version, doc.sha256, "A Patient",
                         actor=Actor(patient.id))
        for j in range(2):
            text = f"note {j} for patient {i}"
            meta = notes.create_note(db, data.keyring, therapist, patient.id, kind="progress",
                                     template="free", sections={"text": text},
                                     actor=Actor(therapist.id))
            written[meta.id] = text
    yield data, db, therapist, written
    db.close()


def read_all(db, key_path, therapist, written):
    ring = read_keyfile(key_path)
    for note_id, text in written.items():
        opened = notes.read_note(db, ring, therapist, note_id, actor=Actor(therapist.id))
        assert opened["sections"][0]["text"] == text


def bodies(db):
    return {r["id"]: r["body"] for r in db.query("SELECT id, body FROM notes")}


def assert_finished(data, db):
    ring = read_keyfile(data.key_path)
    meta = {r["key"]: r["value"] for r in db.query("SELECT * FROM meta")}
    assert list(ring.keys) == [ring.current] == [meta["master_key_id"]]
    assert fingerprint(ring.current_key) == meta["master_key_fingerprint"]
    under = {r["master_key_id"] for r in db.query(
        "SELECT master_key_id FROM patient_keys WHERE wrapped IS NOT NULL")}
    assert under == {ring.current}
    # The server would start on this folder.
    prepare(data.path, [schema.migrations])


def test_rotation_rewraps_keys_and_keeps_notes_readable(clinic):
    data, db, therapist, written = clinic
    before = bodies(db)
    old = read_keyfile(data.key_path)
    result = rotation.rotate(db, data.key_path)
    assert result.old_key_id == old.current != result.new_key_id
    assert result.rewrapped == 4 and result.dropped == [old.current]
    assert bodies(db) == before  # note ciphertext untouched
    assert_finished(data, db)
    read_all(db, data.key_path, therapist, written)
    # The old key alone no longer opens anything, and the old key file is refused.
    with pytest.raises(sealing.SealingError):
        notes.read_note(db, old, therapist, next(iter(written)), actor=Actor(therapist.id))
    write_keyfile(data.path / "old.key", old)
    with pytest.raises(DataDirError):
        prepare(data.path, [schema.migrations], data.path / "old.key")
    audit_rows = list(db.query("SELECT * FROM audit_log WHERE action = 'keys.master_key_rotated'"))
    assert len(audit_rows) == 1


def test_rotating_twice_keeps_everything_readable(clinic):
    data, db, therapist, written = clinic
    first = rotation.rotate(db, data.key_path)
    second = rotation.rotate(db, data.key_path)
    assert second.old_key_id == first.new_key_id != second.new_key_id
    assert_finished(data, db)
    read_all(db, data.key_path, therapist, written)


def test_rewrap_step_is_idempotent(clinic):
    data, db, therapist, written = clinic
    ring = read_keyfile(data.key_path)
    new = MasterKeyring.generate()
    both = MasterKeyring(current=new.current, keys={**ring.keys, **new.keys})
    assert rotation.rewrap_all(db, both, new.current) == 4
    snapshot = list(db.query("SELECT * FROM patient_keys ORDER BY id"))
    assert rotation.rewrap_all(db, both, new.current) == 0
    assert list(db.query("SELECT * FROM patient_keys ORDER BY id")) == snapshot


@pytest.mark.parametrize("crash_at,hits", [
    ("key_added", 1),
    ("rewrapped_one", 1),
    ("rewrapped_one", 3),
    ("rewrapped_one", 4),
    ("meta_switched", 1),
    ("old_key_dropped", 1),
])
def test_interrupted_rotation_finishes_on_rerun(clinic, crash_at, hits):
    data, db, therapist, written = clinic
    before = bodies(db)
    old_id = read_keyfile(data.key_path).current
    seen = {"n": 0}

    def checkpoint(name):
        if name == crash_at:
            seen["n"] += 1
            if seen["n"] == hits:
                raise Crash(name)

    with pytest.raises(Crash):
        rotation.rotate(db, data.key_path, checkpoint=checkpoint)
    # In the interrupted state every note still opens, and the server would still start.
    read_all(db, data.key_path, therapist, written)
    prepare(data.path, [schema.migrations])
    interrupted_ring = read_keyfile(data.key_path)

    result = rotation.rotate(db, data.key_path)
    assert_finished(data, db)
    final = read_keyfile(data.key_path)
    assert final.current != old_id
    if crash_at == "old_key_dropped":
        # That crash came after the last step: the rerun is a new, complete rotation.
        assert not result.resumed and final.current != interrupted_ring.current
    else:
        # The rerun finished the same rotation instead of starting another one.
        assert result.resumed and final.current == interrupted_ring.current
    assert bodies(db) == before
    read_all(db, data.key_path, therapist, written)


def test_patient_key_made_mid_rotation_is_wrapped_under_the_new_key(clinic):
    data, db, therapist, written = clinic

    def checkpoint(name):
        if name == "key_added":
            raise Crash(name)

    with pytest.raises(Crash):
        rotation.rotate(db, data.key_path, checkpoint=checkpoint)
    # A server that re-read the key file now wraps new patient keys under the new key.
    ring = read_keyfile(data.key_path)
    newcomer = accounts.create_user(db, "newcomer", "correct horse battery", Role.PATIENT,
                                    cost=COST)
    pk = sealing.patient_key(db, ring, newcomer.id, create=True)
    assert db.table("patient_keys").get(pk.id)["master_key_id"] == ring.current
    rotation.rotate(db, data.key_path)
    assert_finished(data, db)


def test_stale_key_made_after_rewrap_is_caught_before_switching(clinic):
    data, db, therapist, written = clinic
    stale = read_keyfile(data.key_path)  # a server that has not re-read the file yet
    newcomer = accounts.create_user(db, "newcomer", "correct horse battery", Role.PATIENT,
                                    cost=COST)

    def checkpoint(name):
        if name == "rewrapped_one" and not db.execute(
                "SELECT 1 FROM patient_keys WHERE patient_id = ?", [newcomer.id]).fetchone():
            # Between re-wrapping and switching, the stale server makes a key (old master).
            sealing.patient_key(db, stale, newcomer.id, create=True)

    with pytest.raises(rotation.RotationError):
        rotation.rotate(db, data.key_path, checkpoint=checkpoint)
    rotation.rotate(db, data.key_path)
    assert_finished(data, db)
    read_all(db, data.key_path, therapist, written)


def test_shredded_keys_are_skipped(clinic):
    data, db, therapist, written = clinic
    victim = accounts.find_user(db, "patient0")
    sealing.shred_patient(db, victim.id, actor=Actor(None, "admin"))
    result = rotation.rotate(db, data.key_path)
    assert result.rewrapped == 3
    assert_finished(data, db)
    kept = {k: v for k, v in written.items()
            if db.table("notes").get(k)["patient_id"] != victim.id}
    read_all(db, data.key_path, therapist, kept)


def test_wrong_key_file_is_refused(clinic, tmp_path):
    data, db, therapist, written = clinic
    other = tmp_path / "other.key"
    write_keyfile(other, MasterKeyring.generate())
    with pytest.raises(rotation.RotationError):
        rotation.rotate(db, other)
    read_all(db, data.key_path, therapist, written)


# --- the command line ------------------------------------------------------------------------

def run_keys(*argv):
    import argparse

    from web import cli_keys

    parser = argparse.ArgumentParser(prog="haven")
    cli_keys.add_parser(parser.add_subparsers(dest="command", required=True))
    return cli_keys.run(parser.parse_args(["keys", *argv]))


def test_cli_rotate_and_shred(clinic, capsys):
    from web import cli_keys

    data, db, therapist, written = clinic
    assert run_keys("rotate", "--data-dir", str(data.path)) == 0
    assert "rotated: master key is now" in capsys.readouterr().out
    assert_finished(data, db)
    read_all(db, data.key_path, therapist, written)
    with pytest.raises(cli_keys.KeysCliError, match="--yes"):
        run_keys("shred", "--data-dir", str(data.path), "--patient", "patient1")
    with pytest.raises(cli_keys.KeysCliError, match="no patient"):
        run_keys("shred", "--data-dir", str(data.path), "--patient", "therapist", "--yes")
    assert run_keys("shred", "--data-dir", str(data.path), "--patient", "patient1",
                    "--yes") == 0
    victim = accounts.find_user(db, "patient1")
    assert sealing.patient_erased(db, victim.id)
    rows = list(db.query("SELECT * FROM audit_log WHERE action = 'patient.crypto_shred'"))
    assert len(rows) == 1 and rows[0]["actor_session"] == "cli"
    with pytest.raises(cli_keys.KeysCliError, match="no Haven database"):
        run_keys("rotate", "--data-dir", str(data.path / "nowhere"))
