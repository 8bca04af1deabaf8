"""Rotating the master key: re-wrap every patient key, never touch note ciphertext.

The database records which master key is current (meta ``master_key_id`` and
``master_key_fingerprint``) and, per patient key row, which master key wraps it. A rotation
runs four steps, each idempotent, in an order where a crash between any two leaves a state
that both opens every record and is finished by simply running the command again:

1. **Add.** Generate the new key and write the key file with the old *and* new keys, the
   new one marked current (atomic replace, 0600). From here on the server wraps new patient
   keys under the new master key, and start-up still finds the old current key.
   *Crash after 1:* the file holds an extra key that the database does not name yet; a
   rerun sees ``file.current != meta.master_key_id`` and resumes with that key.
2. **Re-wrap.** For every patient key row not yet under the new key: unwrap with the key
   the row names, wrap with the new one, update the row (one commit per row). Rows already
   under the new key are skipped. *Crash during 2:* some rows are old, some new; both keys
   are in the file, so all still open; a rerun re-wraps the rest.
3. **Switch.** In one transaction, check no live row is left under another key, then set
   meta to the new key id and fingerprint (and audit). *Crash after 3:* meta and file agree
   on the current key, and the file still holds the old one; a rerun only does step 4.
4. **Drop.** Rewrite the key file with only the keys still in use (the new one). *Crash
   during 4:* the write is an atomic replace, so the file is either before or after.

Running the command on a finished state starts a new rotation. A server running during a
rotation re-reads the key file when it changes (see web.app.LiveKeyring), so it keeps opening
records throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from therapy import audit, sealing
from therapy.keyfile import MasterKeyring, fingerprint, read_keyfile, write_keyfile


class RotationError(Exception):
    """The rotation cannot go on safely; the message says why (nothing was lost)."""


@dataclass
class RotationResult:
    old_key_id: str
    new_key_id: str
    rewrapped: int
    resumed: bool
    dropped: list[str]


Checkpoint = Callable[[str], None]


def _meta(db: Database) -> dict[str, str]:
    return {r["key"]: r["value"] for r in db.query("SELECT key, value FROM meta")}


def _check_ring_matches(ring: MasterKeyring, meta: dict[str, str]) -> None:
    wanted = meta.get("master_key_id")
    key = ring.keys.get(wanted or "")
    if key is None or fingerprint(key) != meta.get("master_key_fingerprint"):
        raise RotationError(
            f"the key file does not hold the database's master key {wanted}; "
            "restore the right key file before rotating")


def _wrapped_tables(db: Database) -> list[str]:
    present = set(db.table_names())
    return [t for t in sealing.WRAPPED_KEY_TABLES if t in present]


def rewrap_all(db: Database, ring: MasterKeyring, target: str,
               checkpoint: Checkpoint | None = None) -> int:
    """Re-wrap every live patient key (and group key) not under ``target``. Returns how
    many were."""
    done = 0
    for table in _wrapped_tables(db):
        owner = sealing.WRAPPED_KEY_TABLES[table][0]
        rows = list(db.query(
            f"SELECT * FROM {table} WHERE master_key_id != ? AND wrapped IS NOT NULL "
            "AND destroyed_at IS NULL ORDER BY rowid", [target]))
        for row in rows:
            key = sealing.unwrap_owned_key(ring, table, row)
            wrapped = sealing.wrap_owned_key(ring, target, table, row[owner], row["id"], key)
            with db.atomic():
                # Only if nobody changed the row meanwhile (e.g. shredded it).
                db.execute(
                    f"UPDATE {table} SET wrapped = ?, master_key_id = ? "
                    "WHERE id = ? AND master_key_id = ? AND wrapped IS NOT NULL",
                    [wrapped, target, row["id"], row["master_key_id"]])
            done += 1
            if checkpoint:
                checkpoint("rewrapped_one")
    return done


def _keys_in_use(db: Database) -> set[str]:
    return {r["master_key_id"] for table in _wrapped_tables(db) for r in db.query(
        f"SELECT DISTINCT master_key_id FROM {table} WHERE wrapped IS NOT NULL "
        "AND destroyed_at IS NULL")}


def rotate(db: Database, key_path: Path, *, checkpoint: Checkpoint | None = None,
           new_ring: MasterKeyring | None = None) -> RotationResult:
    """Rotate (or finish an interrupted rotation of) the master key. See the module doc.

    ``checkpoint(name)`` is called after each durable step (tests use it to simulate a
    crash there); ``new_ring`` supplies the new key instead of generating one (tests)."""
    key_path = Path(key_path)
    ring = read_keyfile(key_path)
    meta = _meta(db)
    _check_ring_matches(ring, meta)
    old_id = meta["master_key_id"]
    resumed = False

    if ring.current != old_id:
        # Step 1 happened before: finish with that key.
        target = ring.current
        resumed = True
    elif set(ring.keys) - {old_id}:
        # Step 3 happened before (or extra keys lie around): only drop what is unused.
        target = old_id
        resumed = True
    else:
        fresh = new_ring or MasterKeyring.generate()
        target = fresh.current
        if target in ring.keys:
            raise RotationError("the new key id clashes with an existing one")
        ring = MasterKeyring(current=target,
                             keys={**ring.keys, target: fresh.keys[target]})
        write_keyfile(key_path, ring)  # step 1
        if checkpoint:
            checkpoint("key_added")

    rewrapped = rewrap_all(db, ring, target, checkpoint)  # step 2

    if meta["master_key_id"] != target:  # step 3
        with db.atomic():
            left = sum(db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE master_key_id != ? "
                "AND wrapped IS NOT NULL AND destroyed_at IS NULL", [target]).fetchone()[0]
                for table in _wrapped_tables(db))
            if left:
                raise RotationError(f"{left} patient keys are still under the old master key; "
                                    "run the rotation again")
            db.table("meta").upsert_all(
                [{"key": "master_key_id", "value": target},
                 {"key": "master_key_fingerprint",
                  "value": fingerprint(ring.keys[target])}], pk="key")
            audit.record(db, audit.Actor.system(), "keys.master_key_rotated",
                         key_id=target, previous_key_id=old_id)
        if checkpoint:
            checkpoint("meta_switched")

    # Step 4: keep only keys still in use (and the current one).
    in_use = _keys_in_use(db) | {target}
    missing = in_use - set(ring.keys)
    if missing:
        raise RotationError(f"rows name master keys not in the key file: {sorted(missing)}")
    dropped = sorted(set(ring.keys) - in_use)
    if dropped:
        write_keyfile(key_path, MasterKeyring(
            current=target, keys={k: v for k, v in ring.keys.items() if k in in_use}))
        if checkpoint:
            checkpoint("old_key_dropped")
    return RotationResult(old_key_id=old_id, new_key_id=target, rewrapped=rewrapped,
                          resumed=resumed, dropped=dropped)
