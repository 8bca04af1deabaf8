"""Middlewares: access log, errors, security headers, who is logged in, and CSRF.

Order (outermost first): access log -> security headers -> errors -> session -> CSRF."""

from __future__ import annotations

import logging
import secrets
import time

from aiohttp import web

from therapy import accounts
from web import appkeys
from web.errors import HTTP_CODES, ApiError, error_response
from web.forms import read_form
from web.logs import log_event

log = logging.getLogger("haven.http")

SESSION_COOKIE = "haven_session"
CSRF_COOKIE = "haven_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def route_name(request: web.Request) -> str:
    """The route's pattern ("/api/users/{id}"), never the raw path: paths may hold tokens."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is not None:
        return resource.canonical
    return "(unmatched)"


@web.middleware
async def access_log_middleware(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        log_event(
            log,
            "http",
            method=request.method,
            route=route_name(request),
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 1),
            user=getattr(request.get(appkeys.USER), "id", None),
        )


def render_error_page(request: web.Request, status: int, message: str) -> web.Response:
    env = request.app[appkeys.TEMPLATES]
    html = env.get_template("error.html").render(
        status=status, message=message, user=request.get(appkeys.USER),
        csp_nonce=request.get(appkeys.CSP_NONCE, ""), csrf_token=request.get(appkeys.CSRF_TOKEN, ""),
    )
    return web.Response(text=html, status=status, content_type="text/html")


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as err:
        headers = {}
        if "retry_after" in err.extra:
            headers["Retry-After"] = str(int(err.extra["retry_after"]))
        if is_api(request):
            return error_response(err, headers)
        if err.status == 401:
            raise web.HTTPSeeOther(f"/login?next={request.path}") from None
        resp = render_error_page(request, err.status, err.message)
        resp.headers.update(headers)
        return resp
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status == 101:
            raise
        message = exc.reason or "error"
        # Keep what the exception says besides its body (405's Allow, for one).
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}
        if is_api(request):
            code = HTTP_CODES.get(exc.status, "error")
            return error_response(ApiError(exc.status, code, message.lower()), headers)
        resp = render_error_page(request, exc.status, message)
        resp.headers.update(headers)
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, route_name(request))
        err = ApiError(500, "internal_error", "something went wrong on the server")
        if is_api(request):
            return error_response(err)
        return render_error_page(request, 500, err.message)


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@web.middleware
async def security_headers_middleware(request: web.Request, handler):
    nonce = secrets.token_urlsafe(16)
    request[appkeys.CSP_NONCE] = nonce
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _add_security_headers(response, nonce)
        raise
    _add_security_headers(response, nonce)
    return response


def _add_security_headers(response: web.StreamResponse, nonce: str) -> None:
    if response.prepared:
        return
    h = response.headers
    h.setdefault("Content-Security-Policy", content_security_policy(nonce))
    # Nothing to other sites; our own forms still send their Origin (see same_origin).
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "microphone=(self), camera=(), geolocation=(), payment=()")
    if "Cache-Control" not in h and not getattr(response, "_haven_static", False):
        h["Cache-Control"] = "no-store"


@web.middleware
async def session_middleware(request: web.Request, handler):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        store = request.app[appkeys.STORE]
        found = await store.read(accounts.session_user, token)
        if found is not None:
            request[appkeys.USER], request[appkeys.SESSION_ID] = found
    return await handler(request)


def _cookie_args(request: web.Request) -> dict:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": request.app[appkeys.CONFIG].secure_cookies,
        "path": "/",
    }


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def own_origins(request: web.Request) -> set[str]:
    """The origins Haven's own pages have: where this request was addressed, and the
    configured public address (behind a proxy)."""
    origins = {f"{request.scheme}://{request.host}"}
    public = request.app[appkeys.CONFIG].public_base_url
    if public:
        origins.add(public.rstrip("/"))
    return origins


def same_origin(request: web.Request) -> bool:
    """Did a state-changing request come from Haven's own pages? Browsers send ``Origin``
    on every POST, PUT, PATCH and DELETE. It is ``null`` from sandboxes, some redirects and
    pages whose referrer policy is ``no-referrer`` (ours is ``same-origin``, so our own forms
    send their origin): then only a ``Sec-Fetch-Site: same-origin`` vouches for it. Without
    ``Origin``, ``Sec-Fetch-Site`` tells. A client that sends neither is not a browser, and
    the CSRF token still applies to it."""
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin == "null":
        return site == "same-origin"
    if origin is not None:
        return origin.rstrip("/") in own_origins(request)
    return site in (None, "same-origin", "none")


@web.middleware
async def csrf_middleware(request: web.Request, handler):
    """Every state-changing request must come from Haven's own origin and carry the
    double-submit token: the HttpOnly SameSite=Strict cookie must match the form field or
    the X-CSRF-Token header."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    valid_cookie = 20 <= len(cookie) <= 64
    token = cookie if valid_cookie else new_csrf_token()
    request[appkeys.CSRF_TOKEN] = token
    if request.method in UNSAFE_METHODS:
        if not same_origin(request):
            raise ApiError(403, "origin_refused",
                           "this request came from another site; Haven accepts changes "
                           "only from its own pages")
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent:
            sent = (await read_form(request)).get(CSRF_FIELD, "")
        if not (valid_cookie and sent and accounts.constant_time_equals(sent, cookie)):
            raise ApiError(
                403, "csrf_failed",
                "the request's CSRF token is missing or wrong; reload the page and try again",
            )
    response = await handler(request)
    if not valid_cookie and not response.prepared and CSRF_COOKIE not in response.cookies:
        response.set_cookie(CSRF_COOKIE, token, **_cookie_args(request))
    return response


def cookie_args(request: web.Request) -> dict:
    return _cookie_args(request)
