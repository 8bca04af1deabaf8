"""One key per group, wrapped by the master key, sealing the group's safety records (alerts,
concerns, reports) and its meeting notes.

The envelope is therapy.sealing's (``seal`` / ``open_sealed`` with a fresh data key per
field, bound to table, row and field); only the key at the top is the group's instead of a
patient's. The table is listed in ``therapy.sealing.WRAPPED_KEY_TABLES``, so ``haven keys
rotate`` re-wraps it with the patient keys and start-up refuses a key file that cannot open
it. Deleting a group destroys its key (crypto-shredding everything sealed under it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlite_utils import Database

from therapy import audit, sealing
from therapy.keyfile import MasterKeyring

TABLE = "group_keys"


@dataclass(frozen=True)
class GroupKey:
    id: str
    group_id: int
    key: bytes


def _row(db: Database, group_id: int) -> dict | None:
    rows = list(db.query(f"SELECT * FROM {TABLE} WHERE group_id = ? ORDER BY created_at DESC, "
                         "rowid DESC LIMIT 1", [group_id]))
    return dict(rows[0]) if rows else None


def shredded(db: Database, group_id: int) -> bool:
    row = _row(db, group_id)
    return bool(row and (row["destroyed_at"] or row["wrapped"] is None))


def group_key(db: Database, ring: MasterKeyring, group_id: int, *,
              create: bool = False) -> GroupKey:
    row = _row(db, group_id)
    if row is None:
        if not create:
            raise sealing.SealingError("this group has no key yet")
        gk_id = "gk-" + secrets.token_hex(8)
        key = secrets.token_bytes(sealing.KEY_BYTES)
        db.table(TABLE).insert({
            "id": gk_id, "group_id": group_id, "master_key_id": ring.current,
            "wrapped": sealing.wrap_owned_key(ring, ring.current, TABLE, group_id, gk_id, key),
            "created_at": audit.now_iso(), "destroyed_at": None})
        return GroupKey(gk_id, group_id, key)
    return GroupKey(row["id"], group_id, sealing.unwrap_owned_key(ring, TABLE, row))


def seal(db: Database, ring: MasterKeyring, group_id: int, table: str, row_id: object,
         field: str, plaintext: str) -> bytes:
    if shredded(db, group_id):
        raise sealing.PatientKeyDestroyed("this group's records were deleted")
    return sealing.seal(group_key(db, ring, group_id, create=True), table, row_id, field,
                        plaintext)


def open_sealed(db: Database, ring: MasterKeyring, group_id: int, table: str, row_id: object,
                field: str, blob: bytes) -> str:
    key_id = sealing.sealed_key_id(blob)
    rows = list(db.query(f"SELECT * FROM {TABLE} WHERE id = ?", [key_id]))
    if not rows or rows[0]["group_id"] != group_id:
        raise sealing.SealingError("sealed value belongs to another group")
    gk = GroupKey(key_id, group_id, sealing.unwrap_owned_key(ring, TABLE, dict(rows[0])))
    return sealing.open_sealed(gk, table, row_id, field, blob)  # type: ignore[arg-type]


def shred(db: Database, group_id: int, *, actor: audit.Actor) -> int:
    """Destroy the group's keys (and stop any new one being made). Audited. Overwritten in
    place when the caller has turned secure_delete on (groups.safety.delete_group does, and
    checkpoints the WAL after its transaction)."""
    count = db.execute(
        f"UPDATE {TABLE} SET wrapped = NULL, destroyed_at = ? WHERE group_id = ? "
        "AND destroyed_at IS NULL", [audit.now_iso(), group_id]).rowcount
    if _row(db, group_id) is None:
        db.table(TABLE).insert({"id": "gk-" + secrets.token_hex(8), "group_id": group_id,
                                "master_key_id": "-", "wrapped": None,
                                "created_at": audit.now_iso(),
                                "destroyed_at": audit.now_iso()})
    audit.record(db, actor, "group.crypto_shred", "groups", group_id, keys_destroyed=count)
    return count
