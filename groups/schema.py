"""The groups package's tables, as versioned sqlite-utils migrations (safe to run twice).

Registered in ``web.app.migration_sets()`` after therapy's set: groups refer to ``users`` and
meetings to ``rooms`` and ``join_tokens``.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("groups")


@migrations()
def m001_groups(db: Database) -> None:
    db.table("groups_meta").create({"key": str, "value": str}, pk="key")
    db.table("groups").create(
        {
            "id": int,
            "name": str,
            "description": str,
            "tags": str,  # JSON array of short lowercase topic tags
            "visibility": str,  # listed | invite_only
            "join_policy": str,  # open (join at once) | approval (ask; a facilitator decides)
            "capacity": int,  # people a meeting holds, facilitators included (2..16)
            "environment_id": str,  # the default place (beach, forest, ...)
            "time_zone": str,  # the zone the schedule's wall-clock times are in
            "auto_admit": int,  # default for new meetings: admit members automatically
            "created_at": str,
            "created_by": int,
            "archived_at": str,
        },
        pk="id",
        foreign_keys=[("created_by", "users", "id")],
        not_null={"name", "description", "tags", "visibility", "join_policy", "capacity",
                  "environment_id", "time_zone", "auto_admit", "created_at"},
    )
    db.table("group_members").create(
        {
            "id": int,
            "group_id": int,
            "user_id": int,
            "role": str,  # lead | co | member
            "status": str,  # requested | active | left | removed | banned
            "pseudonym": str,  # the person's name inside this group (never the account's)
            "pseudonym_key": str,  # casefolded pseudonym, for uniqueness
            "color": str,  # "#rrggbb"
            "feed_shows_name": int,  # the member's calendar feed may show the group's name
            "requested_at": str,
            "joined_at": str,
            "left_at": str,
            "banned_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("user_id", "users", "id")],
        not_null={"group_id", "user_id", "role", "status", "feed_shows_name", "updated_at"},
        defaults={"feed_shows_name": 0},
    )
    db.table("group_members").create_index(["group_id", "user_id"], unique=True)
    db.table("group_members").create_index(["user_id"])
    # A pseudonym is unique among the people a group knows (asking, in it, or banned).
    db.execute(
        """CREATE UNIQUE INDEX group_members_pseudonym ON group_members (group_id, pseudonym_key)
           WHERE status IN ('requested', 'active', 'banned') AND pseudonym_key IS NOT NULL"""
    )
    db.table("group_conduct").create(
        {"id": int, "group_id": int, "version": int, "text": str, "sha256": str,
         "created_at": str, "created_by": int},
        pk="id",
        foreign_keys=[("group_id", "groups", "id")],
        not_null={"group_id", "version", "text", "sha256", "created_at"},
    )
    db.table("group_conduct").create_index(["group_id", "version"], unique=True)
    db.table("group_conduct_acceptances").create(
        {"id": int, "group_id": int, "user_id": int, "version": int, "sha256": str,
         "accepted_at": str, "session": str},
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("user_id", "users", "id")],
        not_null={"group_id", "user_id", "version", "sha256", "accepted_at"},
    )
    db.table("group_conduct_acceptances").create_index(["group_id", "user_id"])
    db.table("group_invites").create(
        {"id": str, "group_id": int, "created_by": int, "created_at": str, "expires_at": str,
         "revoked_at": str},  # id: sha256 of the invite token; the token is never stored
        pk="id",
        foreign_keys=[("group_id", "groups", "id")],
        not_null={"group_id", "created_at", "expires_at"},
    )
    db.table("group_invites").create_index(["group_id"])
    db.table("group_schedules").create(
        {"group_id": int, "rrule": str, "start_local": str, "duration_minutes": int,
         "updated_at": str, "updated_by": int},
        pk="group_id",
        foreign_keys=[("group_id", "groups", "id")],
        not_null={"rrule", "start_local", "duration_minutes", "updated_at"},
    )
    db.table("group_exceptions").create(
        {
            "group_id": int,
            "original_local": str,  # the occurrence's wall-clock start by the rule (its identity)
            "status": str,  # cancelled | moved
            "new_start_local": str,  # for moved: the new wall-clock start (group's zone)
            "note": str,
            "updated_at": str,
            "updated_by": int,
        },
        pk=("group_id", "original_local"),
        foreign_keys=[("group_id", "groups", "id")],
        not_null={"status", "updated_at"},
    )
    db.table("group_meetings").create(
        {
            "id": int,
            "group_id": int,
            "original_local": str,  # which occurrence of the schedule
            "starts_at": str,  # UTC instant of the (possibly moved) start
            "ends_at": str,
            "status": str,  # scheduled (lobby only) | open | ended
            "room_id": str,  # the voice room (therapy.rooms, kind "group") once open
            "opened_at": str,
            "opened_by": int,  # group_members.id of the facilitator who opened it
            "ended_at": str,
            "auto_admit": int,
            "locked": int,  # reserved for moderated meetings (lock)
        },
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("room_id", "rooms", "id")],
        not_null={"group_id", "original_local", "starts_at", "ends_at", "status",
                  "auto_admit", "locked"},
        defaults={"locked": 0},
    )
    db.table("group_meetings").create_index(["group_id", "original_local"], unique=True)
    db.table("group_meetings").create_index(["room_id"])
    db.table("group_attendance").create(
        {
            "id": int,
            "meeting_id": int,
            "member_id": int,
            "status": str,  # waiting | admitted | turned_away
            "arrived_at": str,
            "admitted_at": str,
            "admitted_by": int,
            "left_at": str,
        },
        pk="id",
        foreign_keys=[("meeting_id", "group_meetings", "id"), ("member_id", "group_members", "id")],
        not_null={"meeting_id", "member_id", "status", "arrived_at"},
    )
    db.table("group_attendance").create_index(["meeting_id", "member_id"], unique=True)
    db.table("group_attendance").create_index(["member_id"])
    db.table("group_meeting_tokens").create(
        {"token_id": str, "meeting_id": int, "member_id": int, "issued_at": str},
        pk="token_id",  # join_tokens.id (sha256 of the token)
        foreign_keys=[("meeting_id", "group_meetings", "id"),
                      ("member_id", "group_members", "id")],
        not_null={"meeting_id", "member_id", "issued_at"},
    )
    db.table("group_meeting_tokens").create_index(["member_id"])
    db.table("group_feeds").create(
        {"id": str, "user_id": int, "created_at": str},  # id: sha256 of the feed token
        pk="id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"user_id", "created_at"},
    )
    db.table("group_feeds").create_index(["user_id"], unique=True)


@migrations()
def m002_safety(db: Database) -> None:
    """Safety in groups (groups.safety, groups.group_notes, groups.presence): the per-group
    key, private alerts and concerns, reports, consent to group notes, presence in a
    meeting's room, the notes themselves, and each account's country for crisis lines.
    Every text a person writes here is sealed (therapy.sealing) under the group's key."""
    db.table("group_keys").create(
        {"id": str, "group_id": int, "master_key_id": str, "wrapped": bytes,
         "created_at": str, "destroyed_at": str},
        pk="id",
        foreign_keys=[("group_id", "groups", "id")],
        not_null={"group_id", "master_key_id", "created_at"},
    )
    db.table("group_keys").create_index(["group_id"])
    db.table("safety_alerts").create(
        {
            "id": int,
            "group_id": int,
            "member_id": int,  # the member the alert is about (who is struggling)
            "raised_by": int,  # group_members.id: the member themselves, or a facilitator
            "kind": str,  # alert (from the member) | concern (flagged by a facilitator)
            "meeting_id": int,  # the meeting it came from, if any
            "body": bytes,  # sealed optional message (never plain)
            "status": str,  # open | handled
            "handled_by": int,  # users.id
            "handled_at": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("member_id", "group_members", "id")],
        not_null={"group_id", "member_id", "raised_by", "kind", "body", "status",
                  "created_at"},
    )
    db.table("safety_alerts").create_index(["group_id", "status"])
    db.table("safety_reports").create(
        {
            "id": int,
            "group_id": int,
            "reporter_id": int,  # group_members.id; never shown to the reported member
            "reported_id": int,  # group_members.id
            "about_facilitator": int,  # 1: the admin handles it, not the facilitators
            "category": str,  # harassment | unsafe_advice | recording | other
            "meeting_id": int,
            "body": bytes,  # sealed optional text
            "status": str,  # open | handled | dismissed
            "resolution": bytes,  # sealed note of whoever handled it
            "handled_by": int,  # users.id
            "handled_at": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("reporter_id", "group_members", "id"),
                      ("reported_id", "group_members", "id")],
        not_null={"group_id", "reporter_id", "reported_id", "about_facilitator", "category",
                  "body", "status", "created_at"},
    )
    db.table("safety_reports").create_index(["group_id", "status"])
    db.table("safety_reports").create_index(["about_facilitator", "status"])
    db.table("group_notes_consents").create(
        {"id": int, "group_id": int, "member_id": int, "version": int, "sha256": str,
         "signed_at": str, "withdrawn_at": str},
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("member_id", "group_members", "id")],
        not_null={"group_id", "member_id", "version", "sha256", "signed_at"},
    )
    db.table("group_notes_consents").create_index(["group_id", "member_id"])
    db.table("group_presence").create(
        {"meeting_id": int, "member_id": int, "joined_at": str},
        pk=("meeting_id", "member_id"),
        foreign_keys=[("meeting_id", "group_meetings", "id"),
                      ("member_id", "group_members", "id")],
        not_null={"joined_at"},
    )
    db.table("group_notes").create(
        {"id": int, "group_id": int, "meeting_id": int, "author_id": int, "body": bytes,
         "status": str,  # open (being written; members see "notes are being taken") | closed
         "created_at": str, "updated_at": str},
        pk="id",
        foreign_keys=[("group_id", "groups", "id"), ("meeting_id", "group_meetings", "id"),
                      ("author_id", "group_members", "id")],
        not_null={"group_id", "meeting_id", "author_id", "body", "status", "created_at",
                  "updated_at"},
    )
    db.table("group_notes").create_index(["meeting_id"])
    db.table("safety_account_settings").create(
        {"user_id": int, "country": str, "updated_at": str},
        pk="user_id",
        foreign_keys=[("user_id", "users", "id")],
        not_null={"updated_at"},
    )
