"""The therapy package's tables, as versioned sqlite-utils migrations (safe to run twice)."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("therapy")


@migrations()
def m001_meta_users_sessions_audit(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("users").create(
        {
            "id": int,
            "username": str,
            "display_name": str,
            "password_hash": str,
            "role": str,
            "time_zone": str,
            "created_at": str,
            "disabled": int,
        },
        pk="id",
        not_null={"username", "display_name", "password_hash", "role", "created_at"},
        defaults={"disabled": 0, "time_zone": "UTC"},
    )
    db.table("users").create_index(["username"], unique=True)
    db.table("login_sessions").create(
        {
            "id": str,  # sha256 of the cookie token; the token itself is never stored
            "user_id": int,
            "created_at": str,
            "expires_at": str,
        },
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "created_at", "expires_at"},
    )
    db.table("login_sessions").create_index(["user_id"])
    db.table("audit_log").create(
        {
            "id": int,
            "at": str,
            "actor_user_id": int,
            "actor_session": str,
            "action": str,
            "target_table": str,
            "target_id": str,
            "detail": str,
        },
        pk="id",
        not_null={"at", "action"},
    )
    db.table("audit_log").create_index(["target_table", "target_id"])
    db.table("audit_log").create_index(["actor_user_id"])
    # Append-only from the application's side: no UPDATE or DELETE can succeed.
    db.execute(
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    )
    db.execute(
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
    )


@migrations()
def m002_rooms_and_join_tokens(db: Database) -> None:
    db.table("rooms").create(
        {
            "id": str,
            "kind": str,  # adhoc | appointment | group
            "name": str,  # unique for ad-hoc rooms; null otherwise
            "created_at": str,
            "created_by": int,
            "closed_at": str,
        },
        pk="id",
        not_null={"kind", "created_at"},
    )
    db.table("rooms").create_index(["kind", "name"], unique=True)
    db.table("join_tokens").create(
        {
            "id": str,  # sha256 of the token; the token itself is never stored
            "room_id": str,
            "user_id": int,
            "display_name": str,
            "room_role": str,  # host | member
            "created_at": str,
            "expires_at": str,
            "identity": str,  # fingerprint of the identity key that first used it
            "first_used_at": str,
            "revoked_at": str,
        },
        pk="id",
        foreign_keys=[("room_id", "rooms", "id")],
        not_null={"room_id", "display_name", "room_role", "created_at", "expires_at"},
    )
    db.table("join_tokens").create_index(["room_id"])
