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


@migrations()
def m003_practice(db: Database) -> None:
    """Therapy practice: care links, invites, appointments, visits (waiting room), consent,
    patient keys and sealed notes. Sealed columns hold envelope-encrypted blobs only."""
    db.table("care_links").create(
        {"id": int, "therapist_id": int, "patient_id": int, "created_at": str, "ended_at": str},
        pk="id",
        foreign_keys=[("therapist_id", "users", "id"), ("patient_id", "users", "id")],
        not_null={"therapist_id", "patient_id", "created_at"},
    )
    db.table("care_links").create_index(["therapist_id", "patient_id"], unique=True)
    db.table("care_links").create_index(["patient_id"])
    db.table("practice_invites").create(
        {
            "id": str,  # sha256 of the invite token; the token itself is never stored
            "therapist_id": int,
            "created_at": str,
            "expires_at": str,
            "used_at": str,
            "used_by": int,
        },
        pk="id",
        foreign_keys=[("therapist_id", "users", "id")],
        not_null={"therapist_id", "created_at", "expires_at"},
    )
    db.table("appointments").create(
        {
            "id": int,
            "therapist_id": int,
            "patient_id": int,
            "start_local": str,  # wall-clock "YYYY-MM-DDTHH:MM" in time_zone
            "time_zone": str,
            "duration_minutes": int,
            "weekly": int,
            "occurrences": int,  # 1 for a single appointment
            "environment_id": str,
            "created_at": str,
            "cancelled_at": str,
        },
        pk="id",
        foreign_keys=[("therapist_id", "users", "id"), ("patient_id", "users", "id")],
        not_null={"therapist_id", "patient_id", "start_local", "time_zone",
                  "duration_minutes", "weekly", "occurrences", "created_at"},
    )
    db.table("appointments").create_index(["therapist_id"])
    db.table("appointments").create_index(["patient_id"])
    db.table("appointment_changes").create(
        {
            "appointment_id": int,
            "occurrence": int,
            "cancelled_at": str,
            "start_local": str,
            "time_zone": str,
            "duration_minutes": int,
            "environment_id": str,
            "updated_at": str,
        },
        pk=("appointment_id", "occurrence"),
        foreign_keys=[("appointment_id", "appointments", "id")],
        not_null={"updated_at"},
    )
    db.table("visits").create(
        {
            "id": str,
            "appointment_id": int,
            "occurrence": int,
            "room_id": str,
            "status": str,  # waiting | admitted | ended
            "checked_in_at": str,
            "admitted_at": str,
            "ended_at": str,
            "patient_token_id": str,  # sha256 of the latest member token issued to the patient
        },
        pk="id",
        foreign_keys=[("appointment_id", "appointments", "id"), ("room_id", "rooms", "id")],
        not_null={"appointment_id", "occurrence", "status"},
    )
    db.table("visits").create_index(["appointment_id", "occurrence"], unique=True)
    db.table("consent_signatures").create(
        {
            "id": int,
            "patient_id": int,
            "document_id": str,
            "version": int,
            "sha256": str,
            "typed_name": str,
            "signed_at": str,
            "signed_session": str,
            "withdrawn_at": str,
            "withdrawn_session": str,
        },
        pk="id",
        foreign_keys=[("patient_id", "users", "id")],
        not_null={"patient_id", "document_id", "version", "sha256", "typed_name", "signed_at"},
    )
    db.table("consent_signatures").create_index(["patient_id", "document_id"])
    db.table("patient_keys").create(
        {
            "id": str,  # "pk-…"; bound into every sealed record's associated data
            "patient_id": int,
            "master_key_id": str,  # the master key that wraps this row's key
            "wrapped": bytes,  # nonce || AES-GCM(master, patient key); NULL once shredded
            "created_at": str,
            "destroyed_at": str,
        },
        pk="id",
        foreign_keys=[("patient_id", "users", "id")],
        not_null={"patient_id", "master_key_id", "created_at"},
    )
    db.table("patient_keys").create_index(["patient_id"])
    db.table("patient_keys").create_index(["master_key_id"])
    db.table("notes").create(
        {
            "id": str,  # "n-…", random, so it can be bound into the sealed body before insert
            "patient_id": int,
            "author_id": int,
            "appointment_id": int,
            "kind": str,  # progress | psychotherapy
            "template": str,  # soap | dap | birp | free
            "status": str,  # draft | signed
            "shared_with_patient": int,
            "body": bytes,  # sealed JSON of the template's sections
            "created_at": str,
            "updated_at": str,
            "signed_at": str,
        },
        pk="id",
        foreign_keys=[("patient_id", "users", "id"), ("author_id", "users", "id")],
        not_null={"patient_id", "author_id", "kind", "template", "status", "body", "created_at",
                  "updated_at"},
        defaults={"shared_with_patient": 0},
    )
    db.table("notes").create_index(["patient_id"])
    db.table("notes").create_index(["author_id"])
    # A signed note never changes: the database refuses it too, not only the application.
    db.execute(
        """CREATE TRIGGER notes_locked_no_update BEFORE UPDATE ON notes
           WHEN OLD.status = 'signed'
           BEGIN SELECT RAISE(ABORT, 'a signed note is locked'); END"""
    )
    db.execute(
        """CREATE TRIGGER notes_locked_no_delete BEFORE DELETE ON notes
           WHEN OLD.status = 'signed'
           BEGIN SELECT RAISE(ABORT, 'a signed note is locked'); END"""
    )
    db.table("note_addenda").create(
        {"id": str, "note_id": str, "author_id": int, "created_at": str, "body": bytes},
        pk="id",
        foreign_keys=[("note_id", "notes", "id"), ("author_id", "users", "id")],
        not_null={"note_id", "author_id", "created_at", "body"},
    )
    db.table("note_addenda").create_index(["note_id"])
    db.execute(
        """CREATE TRIGGER note_addenda_no_update BEFORE UPDATE ON note_addenda
           BEGIN SELECT RAISE(ABORT, 'addenda are append-only'); END"""
    )
    db.table("calendar_feeds").create(
        {"id": str, "user_id": int, "created_at": str},  # id: sha256 of the feed token
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "created_at"},
    )
    db.table("calendar_feeds").create_index(["user_id"], unique=True)


@migrations()
def m004_safety_care_alerts(db: Database) -> None:
    """A patient's private alert to their therapist ("let my therapist know I'm struggling");
    the optional message is sealed under the patient's key (therapy.sealing)."""
    db.table("care_alerts").create(
        {"id": int, "patient_id": int, "body": bytes, "status": str,  # open | handled
         "created_at": str, "handled_at": str, "handled_by": int},
        pk="id",
        foreign_keys=[("patient_id", "users", "id")],
        not_null={"patient_id", "body", "status", "created_at"},
    )
    db.table("care_alerts").create_index(["patient_id", "status"])
