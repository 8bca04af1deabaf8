"""Accounts, roles and login sessions.

Passwords are hashed with scrypt (memory-hard; from ``cryptography``). Login session tokens
are random; only their SHA-256 is stored, so a copy of the database cannot be replayed as
cookies. Every function here is synchronous and takes a ``Database`` (see therapy.storage).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlite_utils import Database

from therapy import audit
from therapy.audit import Actor


class Role(StrEnum):
    PATIENT = "patient"
    THERAPIST = "therapist"
    MODERATOR = "moderator"
    ADMIN = "admin"


class ValidationError(ValueError):
    """Input that breaks a rule; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class AccountError(Exception):
    """A well-formed request that cannot be carried out (taken username, wrong password, …)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
PASSWORD_MIN, PASSWORD_MAX = 10, 256
DISPLAY_NAME_MAX = 64


def validate_username(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("username", "username must be a string")
    name = value.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise ValidationError(
            "username",
            "username must be 3 to 32 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


def validate_password(value: object, field: str = "password") -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be a string")
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise ValidationError(
            field, f"{field} must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long"
        )
    if not value.strip():
        raise ValidationError(field, f"{field} must not be only spaces")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ValidationError(field, f"{field} must not contain control characters")
    return value


def validate_display_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("display_name", "display name must be a string")
    name = " ".join(value.split())
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise ValidationError(
            "display_name", f"display name must be 1 to {DISPLAY_NAME_MAX} characters"
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        raise ValidationError("display_name", "display name contains characters not allowed")
    return name


_ZONES: frozenset[str] | None = None


def time_zone_names() -> list[str]:
    """Every zone validate_time_zone accepts, sorted (for pickers)."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return sorted(_ZONES | {"UTC"})


def validate_time_zone(value: object) -> str:
    global _ZONES
    if not isinstance(value, str):
        raise ValidationError("time_zone", "time zone must be a string such as Europe/Berlin")
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if value not in _ZONES and value != "UTC":
        raise ValidationError("time_zone", f"unknown time zone {value[:64]!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("time_zone", f"unknown time zone {value[:64]!r}") from None
    return value


def validate_role(value: object) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            "role", f"role must be one of {', '.join(r.value for r in Role)}"
        ) from None


# --- password hashing --------------------------------------------------------------------

@dataclass(frozen=True)
class ScryptCost:
    """scrypt parameters. 2**15 × 8 uses 32 MiB per hash; tests may lower it."""

    n: int = 2**15
    r: int = 8
    p: int = 1


DEFAULT_COST = ScryptCost()


def hash_password(password: str, cost: ScryptCost = DEFAULT_COST) -> str:
    salt = secrets.token_bytes(16)
    digest = Scrypt(salt=salt, length=32, n=cost.n, r=cost.r, p=cost.p).derive(password.encode())
    b64 = base64.b64encode
    return f"scrypt${cost.n}${cost.r}${cost.p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p))
        kdf.verify(password.encode(), base64.b64decode(digest))
        return True
    except (InvalidKey, ValueError):
        return False


# --- users ------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role
    time_zone: str

    @classmethod
    def from_row(cls, row: dict) -> User:
        return cls(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            time_zone=row["time_zone"] or "UTC",
        )

    def public(self) -> dict:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "time_zone": self.time_zone,
        }


def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role = Role.PATIENT,
    display_name: str | None = None,
    time_zone: str = "UTC",
    *,
    actor: Actor | None = None,
    cost: ScryptCost = DEFAULT_COST,
) -> User:
    username = validate_username(username)
    validate_password(password)
    display_name = validate_display_name(display_name if display_name is not None else username)
    time_zone = validate_time_zone(time_zone)
    role = validate_role(role)
    password_hash = hash_password(password, cost)
    with db.atomic():
        if db.table("users").count_where("username = ?", [username]):
            raise AccountError("username_taken", "that username is already taken")
        user_id = db.table("users").insert(
            {
                "username": username,
                "display_name": display_name,
                "password_hash": password_hash,
                "role": role.value,
                "time_zone": time_zone,
                "created_at": audit.now_iso(),
                "disabled": 0,
            }
        ).last_pk
        audit.record(
            db,
            actor or Actor(user_id=user_id),
            "user.create",
            "users",
            user_id,
            role=role.value,
        )
    return get_user(db, user_id)


def get_user(db: Database, user_id: int) -> User:
    rows = list(db.query("SELECT * FROM users WHERE id = ? AND disabled = 0", [user_id]))
    if not rows:
        raise AccountError("not_found", "no such user")
    return User.from_row(rows[0])


def find_user(db: Database, username: str) -> User | None:
    rows = list(
        db.query("SELECT * FROM users WHERE username = ? AND disabled = 0", [username.lower()])
    )
    return User.from_row(rows[0]) if rows else None


def list_users(db: Database) -> list[User]:
    return [User.from_row(r) for r in db.query("SELECT * FROM users ORDER BY id")]


# A hash to verify against when the username is unknown, so timing does not reveal it.
_DUMMY_HASH: str | None = None


def authenticate(db: Database, username: str, password: str) -> User:
    """Return the user for a correct username and password, else raise AccountError."""
    global _DUMMY_HASH
    try:
        username = validate_username(username)
    except ValidationError:
        username = ""
    rows = list(
        db.query("SELECT * FROM users WHERE username = ? AND disabled = 0", [username])
    ) if username else []
    if not rows:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(8), ScryptCost(n=2**14))
        verify_password(password, _DUMMY_HASH)
        raise AccountError("invalid_credentials", "wrong username or password")
    row = rows[0]
    if not verify_password(password, row["password_hash"]):
        raise AccountError("invalid_credentials", "wrong username or password")
    return User.from_row(row)


def change_password(
    db: Database,
    user: User,
    old_password: str,
    new_password: str,
    *,
    keep_session: str | None = None,
    actor: Actor,
    cost: ScryptCost = DEFAULT_COST,
) -> None:
    validate_password(new_password, "new_password")
    row = db.table("users").get(user.id)
    if not verify_password(old_password, row["password_hash"]):
        raise AccountError("invalid_credentials", "the current password is wrong")
    with db.atomic():
        db.table("users").update(user.id, {"password_hash": hash_password(new_password, cost)})
        # Every other login session ends: a changed password locks out whoever had the old one.
        db.execute(
            "DELETE FROM login_sessions WHERE user_id = ? AND id != ?",
            [user.id, keep_session or ""],
        )
        audit.record(db, actor, "user.password_change", "users", user.id)


def set_role(db: Database, user_id: int, role: Role | str, *, actor: Actor) -> User:
    role = validate_role(role)
    with db.atomic():
        before = get_user(db, user_id)
        db.table("users").update(user_id, {"role": role.value})
        db.execute("DELETE FROM login_sessions WHERE user_id = ?", [user_id])
        audit.record(
            db, actor, "user.role_change", "users", user_id, before=before.role.value,
            after=role.value,
        )
    return get_user(db, user_id)


def set_time_zone(db: Database, user: User, time_zone: str, *, actor: Actor) -> User:
    time_zone = validate_time_zone(time_zone)
    db.table("users").update(user.id, {"time_zone": time_zone})
    audit.record(db, actor, "user.time_zone_change", "users", user.id)
    return get_user(db, user.id)


# --- login sessions ----------------------------------------------------------------------

SESSION_LIFETIME = timedelta(hours=12)


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user: User) -> str:
    """Create a login session; returns the token for the cookie (stored only as a hash)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    sid = _session_id(token)
    with db.atomic():
        db.table("login_sessions").insert(
            {
                "id": sid,
                "user_id": user.id,
                "created_at": now.isoformat(),
                "expires_at": (now + SESSION_LIFETIME).isoformat(),
            }
        )
        audit.record(db, Actor(user.id, sid[:12]), "user.login", "users", user.id)
    return token


def session_user(db: Database, token: str) -> tuple[User, str] | None:
    """The user of a live session token and the session's id, or None."""
    if not token or len(token) > 128:
        return None
    sid = _session_id(token)
    rows = list(
        db.query(
            """SELECT users.*, login_sessions.expires_at AS _expires
               FROM login_sessions JOIN users ON users.id = login_sessions.user_id
               WHERE login_sessions.id = ? AND users.disabled = 0""",
            [sid],
        )
    )
    if not rows:
        return None
    if datetime.fromisoformat(rows[0]["_expires"]) < datetime.now(UTC):
        return None
    return User.from_row(rows[0]), sid


def end_session(db: Database, token: str) -> None:
    sid = _session_id(token)
    rows = list(db.query("SELECT user_id FROM login_sessions WHERE id = ?", [sid]))
    with db.atomic():
        db.execute("DELETE FROM login_sessions WHERE id = ?", [sid])
        if rows:
            audit.record(db, Actor(rows[0]["user_id"], sid[:12]), "user.logout", "users",
                         rows[0]["user_id"])


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
