"""Accounts over HTTP: sign-up, login, logout, password, roles (JSON API), shared by the pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from therapy import accounts, audit
from therapy.accounts import AccountError, Role, User, ValidationError
from therapy.audit import Actor
from web import appkeys
from web.errors import ApiError, bad_request, conflict, forbidden, json_response, not_found
from web.middleware import CSRF_COOKIE, SESSION_COOKIE, cookie_args, new_csrf_token
from web.routing import PUBLIC, ApiRegistry, require_user

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "time_zone": {"type": "string"},
    },
}
ONE_USER = {"type": "object", "required": ["user"], "properties": {"user": USER_SCHEMA}}
LOGGED_IN = {"type": "object", "required": ["user", "csrf_token"], "properties": {
    "user": USER_SCHEMA,
    "csrf_token": {"type": "string", "description": "the new CSRF token (rotated at login)"}}}


def _str(data: dict, name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(name, f"{name} must be a string")
    return value


@dataclass(frozen=True)
class SignupBody:
    username: str
    password: str
    display_name: str
    time_zone: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {
            "username": {"type": "string", "pattern": accounts.USERNAME_RE.pattern},
            "password": {"type": "string", "minLength": accounts.PASSWORD_MIN,
                         "maxLength": accounts.PASSWORD_MAX},
            "display_name": {"type": "string", "maxLength": accounts.DISPLAY_NAME_MAX},
            "time_zone": {"type": "string"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> SignupBody:
        username = accounts.validate_username(_str(data, "username"))
        password = accounts.validate_password(_str(data, "password"))
        display = _str(data, "display_name", required=False)
        display = accounts.validate_display_name(display if display is not None else username)
        tz = accounts.validate_time_zone(_str(data, "time_zone", required=False) or "UTC")
        return cls(username, password, display, tz)


@dataclass(frozen=True)
class LoginBody:
    username: str
    password: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
    }

    @classmethod
    def parse(cls, data: dict) -> LoginBody:
        username = _str(data, "username")
        password = _str(data, "password")
        if len(username) > 64 or len(password) > accounts.PASSWORD_MAX:
            raise ValidationError("username", "username or password too long")
        return cls(username.strip().lower(), password)


@dataclass(frozen=True)
class PasswordChangeBody:
    old_password: str
    new_password: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["old_password", "new_password"],
        "properties": {"old_password": {"type": "string"}, "new_password": {"type": "string"}},
    }

    @classmethod
    def parse(cls, data: dict) -> PasswordChangeBody:
        old = _str(data, "old_password")
        new = accounts.validate_password(_str(data, "new_password"), "new_password")
        if old == new:
            raise ValidationError("new_password", "the new password must differ from the old one")
        return cls(old, new)


@dataclass(frozen=True)
class RoleBody:
    role: Role
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string", "enum": [r.value for r in Role]}},
    }

    @classmethod
    def parse(cls, data: dict) -> RoleBody:
        return cls(accounts.validate_role(data.get("role")))


@dataclass(frozen=True)
class ProfileBody:
    display_name: str | None
    time_zone: str | None
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {"display_name": {"type": "string"}, "time_zone": {"type": "string"}},
    }

    @classmethod
    def parse(cls, data: dict) -> ProfileBody:
        display = _str(data, "display_name", required=False)
        tz = _str(data, "time_zone", required=False)
        return cls(
            accounts.validate_display_name(display) if display is not None else None,
            accounts.validate_time_zone(tz) if tz is not None else None,
        )


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def actor_of(request: web.Request) -> Actor:
    user = request.get(appkeys.USER)
    sid = request.get(appkeys.SESSION_ID)
    return Actor(user.id if user else None, sid[:12] if sid else None)


async def login(request: web.Request, username: str, password: str) -> tuple[User, str]:
    """Check the rate limit and the password; returns the user and a new session token."""
    app = request.app
    limiter = app[appkeys.LIMITER]
    store = app[appkeys.STORE]
    address = client_address(request)
    username = username.strip().lower()
    wait = limiter.retry_after(username, address)
    if wait is not None:
        await store.write(
            lambda db: audit.record(db, Actor(None), "user.login_rate_limited", "users", None,
                                    username_hash=_short_hash(username))
        )
        raise ApiError(429, "rate_limited", f"too many failed logins; wait {int(wait)} "
                       "seconds and try again", retry_after=int(wait))
    try:
        user = await store.read(accounts.authenticate, username, password)
    except AccountError as exc:
        limiter.failed(username, address)
        await store.write(
            lambda db: audit.record(db, Actor(None), "user.login_failed", "users", None,
                                    username_hash=_short_hash(username))
        )
        raise ApiError(401, exc.code, exc.message) from None
    limiter.succeeded(username, address)
    token = await store.write(accounts.start_session, user)
    return user, token


def _short_hash(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()[:16]


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str,
                       csrf_token: str | None = None) -> str:
    """Start the login session on ``response``, and rotate the CSRF token with it (a token
    planted before the login is worth nothing after it). Returns the new CSRF token."""
    response.set_cookie(SESSION_COOKIE, token, max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
                        **cookie_args(request))
    csrf_token = csrf_token or new_csrf_token()
    response.set_cookie(CSRF_COOKIE, csrf_token, **cookie_args(request))
    return csrf_token


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    args = cookie_args(request)
    response.del_cookie(SESSION_COOKIE, path=args["path"])


async def signup(request: web.Request, body: SignupBody) -> User:
    config = request.app[appkeys.CONFIG]
    if not config.open_signup:
        raise forbidden("sign-up is by invitation only on this Haven")
    store = request.app[appkeys.STORE]
    try:
        return await store.write(
            lambda db: accounts.create_user(
                db, body.username, body.password, Role.PATIENT, body.display_name,
                body.time_zone, cost=config.scrypt_cost,
            )
        )
    except AccountError as exc:
        raise conflict(exc.message, exc.code) from None


def register(api: ApiRegistry) -> None:
    @api.operation("POST", "/api/signup", summary="Create a patient account and log in",
                   auth=PUBLIC, body=SignupBody, response=LOGGED_IN, tags=["accounts"],
                   errors=[409, 429], status=201)
    async def api_signup(request: web.Request) -> web.Response:
        body: SignupBody = request[appkeys.BODY]
        await signup(request, body)
        user, token = await login(request, body.username, body.password)
        csrf = new_csrf_token()
        resp = json_response({"user": user.public(), "csrf_token": csrf}, status=201)
        set_session_cookie(request, resp, token, csrf)
        return resp

    @api.operation("POST", "/api/login", summary="Log in (sets the session cookie)",
                   auth=PUBLIC, body=LoginBody, response=LOGGED_IN, tags=["accounts"],
                   errors=[401, 429])
    async def api_login(request: web.Request) -> web.Response:
        body: LoginBody = request[appkeys.BODY]
        user, token = await login(request, body.username, body.password)
        csrf = new_csrf_token()
        resp = json_response({"user": user.public(), "csrf_token": csrf})
        set_session_cookie(request, resp, token, csrf)
        return resp

    @api.operation("POST", "/api/logout", summary="Log out (ends this session)",
                   tags=["accounts"])
    async def api_logout(request: web.Request) -> web.Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        await request.app[appkeys.STORE].write(accounts.end_session, token)
        resp = json_response({"ok": True})
        clear_session_cookie(request, resp)
        return resp

    @api.operation("GET", "/api/me", summary="The logged-in user", response=ONE_USER,
                   tags=["accounts"])
    async def api_me(request: web.Request) -> web.Response:
        return json_response({"user": require_user(request).public()})

    @api.operation("PATCH", "/api/me", summary="Change display name or time zone",
                   body=ProfileBody, response=ONE_USER, tags=["accounts"])
    async def api_update_me(request: web.Request) -> web.Response:
        user = require_user(request)
        updated = await update_profile(request, user, request[appkeys.BODY])
        return json_response({"user": updated.public()})

    @api.operation("POST", "/api/me/password", summary="Change password (ends other sessions)",
                   body=PasswordChangeBody, tags=["accounts"], errors=[401])
    async def api_change_password(request: web.Request) -> web.Response:
        user = require_user(request)
        body: PasswordChangeBody = request[appkeys.BODY]
        await change_password(request, user, body.old_password, body.new_password)
        return json_response({"ok": True})

    @api.operation("GET", "/api/users", summary="All accounts (admin)", auth=[Role.ADMIN],
                   tags=["accounts"])
    async def api_users(request: web.Request) -> web.Response:
        users = await request.app[appkeys.STORE].read(accounts.list_users)
        return json_response({"users": [u.public() for u in users]})

    @api.operation("PUT", "/api/users/{user_id:int}/role", summary="Change a user's role (admin)",
                   auth=[Role.ADMIN], body=RoleBody, response=ONE_USER, tags=["accounts"],
                   errors=[404])
    async def api_set_role(request: web.Request) -> web.Response:
        body: RoleBody = request[appkeys.BODY]
        user = await set_role(request, request.match_info["user_id"], body.role)
        return json_response({"user": user.public()})


async def update_profile(request: web.Request, user: User, body: ProfileBody) -> User:
    """Change the display name and/or time zone (both audited); returns the updated user."""
    actor = actor_of(request)

    def update(db):
        if body.display_name is not None and body.display_name != user.display_name:
            db.table("users").update(user.id, {"display_name": body.display_name})
            audit.record(db, actor, "user.profile_change", "users", user.id)
        if body.time_zone is not None and body.time_zone != user.time_zone:
            accounts.set_time_zone(db, user, body.time_zone, actor=actor)
        return accounts.get_user(db, user.id)

    return await request.app[appkeys.STORE].write(update)


async def change_password(request: web.Request, user: User, old: str, new: str) -> None:
    config = request.app[appkeys.CONFIG]
    actor = actor_of(request)
    try:
        await request.app[appkeys.STORE].write(
            lambda db: accounts.change_password(
                db, user, old, new, keep_session=request.get(appkeys.SESSION_ID), actor=actor,
                cost=config.scrypt_cost,
            )
        )
    except AccountError as exc:
        raise ApiError(401 if exc.code == "invalid_credentials" else 400, exc.code,
                       exc.message) from None


async def set_role(request: web.Request, raw_user_id: str, role: Role) -> User:
    admin = require_user(request, [Role.ADMIN])
    try:
        user_id = int(raw_user_id)
    except ValueError:
        raise bad_request("user id must be a number") from None
    if user_id == admin.id and role != Role.ADMIN:
        raise forbidden("an admin cannot remove their own admin role")
    try:
        return await request.app[appkeys.STORE].write(
            lambda db: accounts.set_role(db, user_id, role, actor=actor_of(request))
        )
    except AccountError:
        raise not_found("no such user") from None
