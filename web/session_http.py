"""The session page: ``GET /s/{room_id}`` (the join token follows in the URL's fragment,
which the browser keeps to itself). The page is public: the token is the authority, checked
by the signaling hub when the page joins."""

from __future__ import annotations

import re

from aiohttp import web

from environments import catalog
from groups import meetings as group_meetings
from therapy import rooms
from web import appkeys
from web.errors import ApiError, not_found
from web.pages import render

ROOM_ID = re.compile(r"^r-[0-9a-f]{16}$")


async def session_page(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    if not ROOM_ID.fullmatch(room_id):
        raise not_found("There is no session at this address. Check the link you were given.")
    found = await request.app[appkeys.STORE].read(rooms.room, room_id)
    if found is None:
        raise not_found("There is no session at this address. Check the link you were given.")
    if found["closed_at"]:
        raise ApiError(410, "room_closed", "This session has ended. Thank you for coming.")
    envs = catalog.all_environments()
    wanted = request.query.get("environment") or await request.app[appkeys.STORE].read(
        _room_environment, room_id)
    chosen = catalog.get_environment(wanted or "") or envs[0]
    response = render(
        request, "session.html",
        room_id=room_id,
        environment=chosen,
        environments=envs,
        definitions={e.id: e.to_dict() for e in envs},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _room_environment(db, room_id: str) -> str | None:
    """The environment the patient chose ahead of time for this appointment, or the group's
    place for a group meeting, if any."""
    if "group_meetings" in db.table_names():
        place = group_meetings.room_environment(db, room_id)
        if place:
            return place
    if "visits" not in db.table_names():
        return None
    row = db.execute(
        """SELECT COALESCE(c.environment_id, a.environment_id)
           FROM visits v JOIN appointments a ON a.id = v.appointment_id
           LEFT JOIN appointment_changes c
             ON c.appointment_id = v.appointment_id AND c.occurrence = v.occurrence
           WHERE v.room_id = ? LIMIT 1""",
        [room_id],
    ).fetchone()
    return row[0] if row else None


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/s/{room_id}", session_page, name="session")
