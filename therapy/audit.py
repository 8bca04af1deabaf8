"""The audit trail: who did what to which record, and when. Append-only.

Details must never hold note text, passwords, tokens or keys: callers pass ids and small
enumerated facts only (``detail`` is checked against a short list of forbidden names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlite_utils import Database

FORBIDDEN_DETAIL_KEYS = {"password", "token", "key", "secret", "body", "text", "note"}


@dataclass(frozen=True)
class Actor:
    """Who acted: a user (and the login session they acted from), or the system itself."""

    user_id: int | None
    session: str | None = None  # a short prefix of the session id, never the token

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None, session="system")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def record(
    db: Database,
    actor: Actor,
    action: str,
    target_table: str | None = None,
    target_id: object = None,
    **detail: object,
) -> int:
    bad = FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in detail)
    if bad:
        raise ValueError(f"audit detail must not carry {sorted(bad)}")
    row = {
        "at": now_iso(),
        "actor_user_id": actor.user_id,
        "actor_session": actor.session,
        "action": action,
        "target_table": target_table,
        "target_id": None if target_id is None else str(target_id),
        "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
    }
    return db.table("audit_log").insert(row).last_pk


def entries(
    db: Database,
    *,
    target_table: str | None = None,
    target_ids: list[str] | None = None,
    actor_user_id: int | None = None,
    limit: int = 200,
) -> list[dict]:
    where, params = [], []
    if target_table is not None:
        where.append("target_table = ?")
        params.append(target_table)
    if target_ids is not None:
        if not target_ids:
            return []
        where.append(f"target_id IN ({','.join('?' * len(target_ids))})")
        params.extend(target_ids)
    if actor_user_id is not None:
        where.append("actor_user_id = ?")
        params.append(actor_user_id)
    sql = "SELECT * FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    rows = [dict(r) for r in db.query(sql, params)]
    for r in rows:
        r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
    return rows
