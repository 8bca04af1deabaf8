"""What the groups API and the groups pages share: running storage calls with the domain's
errors turned into API errors, path parameters, and the steps that also touch the voice
hub (ending a meeting closes its voice room for everyone)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from groups import meetings
from groups.errors import GroupError
from groups.permissions import Denied
from therapy.accounts import AccountError, User, ValidationError
from therapy.rooms import RoomError
from web import appkeys
from web.api_accounts import actor_of
from web.errors import ApiError
from web.store_calls import store_call

# Refusals from groups.permissions, by code.
DENIED_STATUS = {"unauthenticated": 401, "forbidden": 403, "not_found": 404, "banned": 403,
                 "not_member": 403, "facilitator_target": 403, "conduct_required": 409,
                 "archived": 409, "already_member": 409}
# GroupError codes that are not 409 conflicts.
ERROR_STATUS = {"not_found": 404, "window_too_large": 422, "forbidden": 403}


def api_error(exc: Exception) -> ApiError | None:
    if isinstance(exc, Denied):
        return ApiError(DENIED_STATUS.get(exc.code, 403), exc.code, exc.message)
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_field", exc.message, field=exc.field)
    if isinstance(exc, GroupError):
        extra = {"field": exc.field} if exc.field else {}
        return ApiError(ERROR_STATUS.get(exc.code, 409), exc.code, exc.message, **extra)
    if isinstance(exc, RoomError):
        return ApiError(409, exc.code, exc.message)
    if isinstance(exc, AccountError):
        return ApiError(404 if exc.code == "not_found" else 409, exc.code, exc.message)
    return None


async def write(request: web.Request, fn) -> Any:
    return await store_call(request, fn, write=True, to_api=api_error)


async def read(request: web.Request, fn) -> Any:
    return await store_call(request, fn, write=False, to_api=api_error)


def group_id(request: web.Request) -> int:
    """The {group_id} path parameter; a number out of range names no group (404)."""
    raw = request.match_info["group_id"]
    if not raw.isdigit() or len(raw) > 15 or int(raw) == 0:
        raise ApiError(404, "not_found", "there is no such group")
    return int(raw)


def member_id(request: web.Request) -> int:
    raw = request.match_info["member_id"]
    if not raw.isdigit() or len(raw) > 15 or int(raw) == 0:
        raise ApiError(404, "not_found", "no such member in this group")
    return int(raw)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_field", message, field=field)


def form_int(value: object, name: str) -> int:
    text = str(value or "")
    if not text.isdigit() or len(text) > 15:
        raise ApiError(422, "invalid_field", f"{name} must be a number", field=name)
    return int(text)


def base_url(request: web.Request) -> str:
    return request.app[appkeys.CONFIG].base_url


def join_path(room_id: str, token: str) -> str:
    return f"/s/{room_id}#{token}"


async def end_meeting(request: web.Request, user: User, gid: int, key: str) -> None:
    """End a meeting for everyone: close its room in the records, then drop whoever is
    still connected to the voice room."""
    actor = actor_of(request)
    room_id = await write(request, lambda db: meetings.end_meeting(db, user, gid, key,
                                                                   actor=actor))
    if room_id:
        await request.app[appkeys.VOICE].disconnect_room(room_id)
