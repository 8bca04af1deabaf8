"""Voice rooms and the join tokens that let one identity into one room.

A join token is random, shown once (in a join URL's fragment, which browsers never send to
the server or put in logs), and stored only as its SHA-256. It binds to the identity key of
the first client that uses it: the same device may use it again to rejoin after a reload or
a network blip, another identity may not. Tokens expire, and a host can revoke them
(removal) or close the room.

Join URL: ``{base_url}/s/{room_id}#{token}``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from therapy import audit
from therapy.accounts import validate_display_name
from therapy.audit import Actor

ROOM_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROOM_ID_RE = re.compile(r"^r-[0-9a-f]{16}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
DEFAULT_TTL = timedelta(hours=12)
ROOM_ROLES = ("host", "member")
MAX_TOKENS_PER_CALL = 64


class RoomError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JoinGrant:
    """What a redeemed token allows: this identity, in this room, under this name and role."""

    token_id: str
    room_id: str
    display_name: str
    room_role: str
    user_id: int | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def create_room(db: Database, kind: str, *, name: str | None = None,
                created_by: int | None = None) -> str:
    room_id = "r-" + secrets.token_hex(8)
    db.table("rooms").insert(
        {"id": room_id, "kind": kind, "name": name, "created_at": _now().isoformat(),
         "created_by": created_by, "closed_at": None}
    )
    return room_id


def adhoc_room(db: Database, name: str, *, created_by: int | None = None) -> str:
    """The open ad-hoc room called ``name``, created if needed."""
    if not ROOM_NAME_RE.fullmatch(name or ""):
        raise RoomError("invalid_room_name",
                        "room name must be 1 to 64 letters, digits, '.', '_' or '-'")
    rows = list(db.query(
        "SELECT id FROM rooms WHERE kind = 'adhoc' AND name = ? AND closed_at IS NULL", [name]))
    if rows:
        return rows[0]["id"]
    # A closed room of that name gives its name up to the new one.
    db.execute("UPDATE rooms SET name = NULL WHERE kind = 'adhoc' AND name = ?", [name])
    return create_room(db, "adhoc", name=name, created_by=created_by)


def room(db: Database, room_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM rooms WHERE id = ?", [room_id]))
    return rows[0] if rows else None


def issue_token(
    db: Database,
    room_id: str,
    display_name: str,
    *,
    room_role: str = "member",
    user_id: int | None = None,
    ttl: timedelta = DEFAULT_TTL,
    actor: Actor | None = None,
) -> str:
    if room_role not in ROOM_ROLES:
        raise RoomError("invalid_room_role", f"room role must be one of {ROOM_ROLES}")
    found = room(db, room_id)
    if found is None or found["closed_at"]:
        raise RoomError("room_closed", "that room does not exist or is closed")
    token = secrets.token_urlsafe(32)
    now = _now()
    db.table("join_tokens").insert(
        {"id": _hash(token), "room_id": room_id, "user_id": user_id,
         "display_name": validate_display_name(display_name), "room_role": room_role,
         "created_at": now.isoformat(), "expires_at": (now + ttl).isoformat(),
         "identity": None, "first_used_at": None, "revoked_at": None}
    )
    audit.record(db, actor or Actor.system(), "room.token_issued", "rooms", room_id,
                 room_role=room_role)
    return token


def redeem(db: Database, token: str, room_id: str, identity: str) -> JoinGrant:
    """Check a token for ``room_id`` and bind it to ``identity`` on first use."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise RoomError("invalid_token", "the join link is not valid")
    rows = list(db.query(
        """SELECT t.*, r.closed_at AS room_closed FROM join_tokens t
           JOIN rooms r ON r.id = t.room_id WHERE t.id = ?""", [_hash(token)]))
    if not rows or rows[0]["room_id"] != room_id:
        raise RoomError("invalid_token", "the join link is not valid for this room")
    row = rows[0]
    if row["room_closed"]:
        raise RoomError("room_closed", "this session has ended")
    if row["revoked_at"]:
        raise RoomError("token_revoked", "you were removed from this room")
    if datetime.fromisoformat(row["expires_at"]) < _now():
        raise RoomError("token_expired", "the join link has expired; ask for a new one")
    if row["identity"] is None:
        with db.atomic():
            db.execute(
                "UPDATE join_tokens SET identity = ?, first_used_at = ? "
                "WHERE id = ? AND identity IS NULL",
                [identity, _now().isoformat(), row["id"]],
            )
            bound = db.execute("SELECT identity FROM join_tokens WHERE id = ?",
                               [row["id"]]).fetchone()[0]
    else:
        bound = row["identity"]
    if bound != identity:
        raise RoomError("token_used", "this join link was already used by another device")
    return JoinGrant(row["id"], row["room_id"], row["display_name"], row["room_role"],
                     row["user_id"])


def name_key(name: str) -> str:
    """A name as people read it: case, width, spaces and punctuation do not tell two names
    apart (so "Dr. Robin" and "dr robin" are the same name)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded
                   if not c.isspace() and not unicodedata.category(c).startswith("P"))


def participant_name(db: Database, token: str, room_id: str, requested: str | None,
                     hosts_present: Iterable[tuple[str, str]] = ()) -> str | None:
    """The name a participant joining with ``token`` shows in the room.

    A therapy session's name comes from the account and a group's from the member's
    pseudonym: both are the token's ``display_name``, set by the server when it issued the
    token, and a name the client asks for is ignored. Only an instant (ad-hoc) room takes a
    free name, and not one that reads like a host's of that room (a host token's name, or the
    name a host present uses; ``hosts_present`` holds (token id, name) pairs):
    ``RoomError("name_taken")``. Checked before the token is redeemed, so a refused name does
    not use the token up. None for a token that names nothing (``redeem`` says why)."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        return None
    token_id = _hash(token)
    row = db.execute(
        "SELECT t.display_name, r.kind FROM join_tokens t JOIN rooms r ON r.id = t.room_id "
        "WHERE t.id = ? AND t.room_id = ?", [token_id, room_id]).fetchone()
    if row is None:
        return None
    own, kind = row
    if not requested or kind != "adhoc":
        return own
    key = name_key(requested)
    host_names = [r[0] for r in db.execute(
        "SELECT display_name FROM join_tokens WHERE room_id = ? AND room_role = 'host' "
        "AND id != ?", [room_id, token_id])]
    host_names += [name for tid, name in hosts_present if tid != token_id]
    if key and any(key == name_key(other) for other in host_names):
        raise RoomError("name_taken", "a host of this room has that name; choose another")
    return requested


def revoke(db: Database, token_id: str, *, actor: Actor) -> None:
    db.execute("UPDATE join_tokens SET revoked_at = ? WHERE id = ?", [_now().isoformat(), token_id])
    audit.record(db, actor, "room.token_revoked", "join_tokens", token_id[:16])


def close_room(db: Database, room_id: str, *, actor: Actor) -> None:
    db.execute("UPDATE rooms SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
               [_now().isoformat(), room_id])
    audit.record(db, actor, "room.closed", "rooms", room_id)


def join_url(base_url: str, room_id: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s/{room_id}#{token}"
