"""Server-rendered pages: home, login, sign-up, account, admin. Forms post with a CSRF token;
authorisation is checked here on the server, whatever the page shows."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from environments import catalog
from therapy import accounts
from therapy.accounts import AccountError, Role, ValidationError
from web import api_accounts, appkeys
from web.api_accounts import ProfileBody, SignupBody
from web.errors import ApiError
from web.forms import read_form
from web.routing import current_user, require_user


def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    env = request.app[appkeys.TEMPLATES]
    html = env.get_template(template).render(
        user=current_user(request),
        csrf_token=request[appkeys.CSRF_TOKEN],
        csp_nonce=request[appkeys.CSP_NONCE],
        **context,
    )
    return web.Response(text=html, status=status, content_type="text/html")


def safe_next(value: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if not value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


async def home(request: web.Request) -> web.Response:
    return render(request, "index.html", environments=catalog.all_environments())


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=safe_next(request.query.get("next")), error=None,
                  username="")


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[: accounts.PASSWORD_MAX]
    nxt = safe_next(str(form.get("next", "")))
    try:
        _, token = await api_accounts.login(request, username, password)
    except ApiError as err:
        status = err.status if err.status in (401, 429) else 400
        resp = render(request, "login.html", status=status, next=nxt, error=err.message,
                      username=username)
        if "retry_after" in err.extra:
            resp.headers["Retry-After"] = str(err.extra["retry_after"])
        return resp
    redirect = web.HTTPSeeOther(nxt)
    api_accounts.set_session_cookie(request, redirect, token)
    raise redirect


async def logout_submit(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get("haven_session", "")
    await request.app[appkeys.STORE].write(accounts.end_session, token)
    redirect = web.HTTPSeeOther("/")
    api_accounts.clear_session_cookie(request, redirect)
    raise redirect


async def signup_page(request: web.Request) -> web.Response:
    return render(request, "signup.html", error=None, field=None, form={})


async def signup_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    data = {k: str(form.get(k, "")) for k in ("username", "password", "display_name", "time_zone")}
    if not data["display_name"]:
        data.pop("display_name")
    if not data["time_zone"]:
        data["time_zone"] = "UTC"
    shown = {k: v for k, v in data.items() if k != "password"}
    try:
        body = SignupBody.parse(data)
        await api_accounts.signup(request, body)
        _, token = await api_accounts.login(request, body.username, body.password)
    except ValidationError as exc:
        return render(request, "signup.html", status=422, error=exc.message, field=exc.field,
                      form=shown)
    except ApiError as err:
        return render(request, "signup.html", status=err.status, error=err.message, field=None,
                      form=shown)
    redirect = web.HTTPSeeOther("/")
    api_accounts.set_session_cookie(request, redirect, token)
    raise redirect


async def _account(request: web.Request, status: int = 200, *, message: str | None = None,
                   error: str | None = None, profile_message: str | None = None,
                   profile_error: str | None = None, form: dict | None = None) -> web.Response:
    from groups import safety

    user = require_user(request)
    country = await request.app[appkeys.STORE].read(lambda db: safety.account_country(
        db, user.id))
    country_message = ("Saved. \"Get help now\" shows this country first."
                       if request.query.get("done") == "country" else None)
    return render(request, "account.html", status=status, message=message, error=error,
                  profile_message=profile_message, profile_error=profile_error,
                  form=form or {}, zones=accounts.time_zone_names(),
                  account_country=country, country_message=country_message)


async def account_page(request: web.Request) -> web.Response:
    require_user(request)
    return await _account(request)


async def profile_submit(request: web.Request) -> web.Response:
    """The account page's "Your name and time zone" form (PATCH /api/me for browsers)."""
    user = require_user(request)
    form = await request.post()
    data = {k: str(form.get(k, "")).strip() for k in ("display_name", "time_zone")}
    try:
        body = ProfileBody.parse({k: v for k, v in data.items() if v})
    except ValidationError as exc:
        return await _account(request, 422, profile_error=exc.message, form=data)
    updated = await api_accounts.update_profile(request, user, body)
    request[appkeys.USER] = updated
    return await _account(request, profile_message="Saved. Times are now shown in "
                    f"{updated.time_zone}, and new sessions show you as {updated.display_name}.")


async def password_submit(request: web.Request) -> web.Response:
    user = require_user(request)
    form = await read_form(request)
    old = str(form.get("old_password", ""))
    new = str(form.get("new_password", ""))
    try:
        accounts.validate_password(new, "new_password")
        await api_accounts.change_password(request, user, old, new)
    except ValidationError as exc:
        return await _account(request, 422, error=exc.message)
    except ApiError as err:
        return await _account(request, err.status, error=err.message)
    return await _account(request, message="Your password was changed. Other devices were logged out.")


async def admin_users_page(request: web.Request) -> web.Response:
    require_user(request, [Role.ADMIN])
    users = await request.app[appkeys.STORE].read(accounts.list_users)
    return render(request, "admin_users.html", users=users, roles=list(Role), message=None)


async def admin_role_submit(request: web.Request) -> web.Response:
    require_user(request, [Role.ADMIN])
    form = await read_form(request)
    try:
        role = accounts.validate_role(str(form.get("role", "")))
    except ValidationError as exc:
        raise ApiError(422, "invalid_field", exc.message) from None
    try:
        changed = await api_accounts.set_role(request, request.match_info["user_id"], role)
    except AccountError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    users = await request.app[appkeys.STORE].read(accounts.list_users)
    return render(request, "admin_users.html", users=users, roles=list(Role),
                  message=f"{changed.display_name} is now {changed.role.value}.")


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/", home, name="home")
    router.add_get("/login", login_page, name="login")
    router.add_post("/login", login_submit)
    router.add_post("/logout", logout_submit, name="logout")
    router.add_get("/signup", signup_page, name="signup")
    router.add_post("/signup", signup_submit)
    router.add_get("/account", account_page, name="account")
    router.add_post("/account/password", password_submit)
    router.add_post("/account/profile", profile_submit)
    router.add_get("/admin/users", admin_users_page, name="admin-users")
    router.add_post("/admin/users/{user_id}/role", admin_role_submit)
