"""Who is in a meeting's voice room right now: the facts consented notes depend on.

The voice hub feeds it (one call on each join and each leave of a group meeting's room;
``groups.meetings.seat_for_token`` gives it the meeting and member of a join token)::

    store.write(lambda db: presence.joined(db, seat.meeting_id, seat.member_id))
    store.write(lambda db: presence.left(db, seat.meeting_id, seat.member_id))
    store.write(lambda db: presence.cleared(db, meeting_id))  # the room closed

``joined`` answers the meeting's note state afterwards (``group_notes.state``), so the hub
can tell the facilitators at once when note-taking pauses. Nothing here is audited (the
attendance record is groups.meetings').
"""

from __future__ import annotations

from sqlite_utils import Database

from therapy import audit


def joined(db: Database, meeting_id: int, member_id: int) -> dict:
    from groups import group_notes

    with db.atomic():
        db.execute("INSERT OR IGNORE INTO group_presence (meeting_id, member_id, joined_at) "
                   "VALUES (?, ?, ?)", [meeting_id, member_id, audit.now_iso()])
        return group_notes.state(db, meeting_id)


def left(db: Database, meeting_id: int, member_id: int) -> None:
    with db.atomic():
        db.execute("DELETE FROM group_presence WHERE meeting_id = ? AND member_id = ?",
                   [meeting_id, member_id])


def cleared(db: Database, meeting_id: int) -> None:
    with db.atomic():
        db.execute("DELETE FROM group_presence WHERE meeting_id = ?", [meeting_id])


def clear_all(db: Database) -> None:
    """Nobody is present anywhere (the voice hub starts empty)."""
    with db.atomic():
        db.execute("DELETE FROM group_presence")


def present(db: Database, meeting_id: int) -> list[dict]:
    """The members in the room (id, pseudonym, role), in order of arrival."""
    return [dict(r) for r in db.query(
        "SELECT m.id, m.pseudonym, m.role FROM group_presence p JOIN group_members m "
        "ON m.id = p.member_id WHERE p.meeting_id = ? ORDER BY p.joined_at, m.id",
        [meeting_id])]


def current_meeting(db: Database, group_id: int, member_id: int) -> int | None:
    """The open meeting of the group the member is in right now, if any."""
    row = db.execute(
        "SELECT p.meeting_id FROM group_presence p JOIN group_meetings g ON g.id = p.meeting_id "
        "WHERE g.group_id = ? AND p.member_id = ? AND g.status = 'open' "
        "ORDER BY p.joined_at DESC LIMIT 1", [group_id, member_id]).fetchone()
    return row[0] if row else None
