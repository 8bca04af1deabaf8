"""Fault 3 of issue 11: malformed form bodies are a 400 on every unsafe route, and a
state-changing request from another origin is refused.

Before, ``csrf_middleware``'s ``await request.post()`` raised on a multipart body without a
boundary, a truncated one or non-UTF-8 urlencoded bytes, and every unsafe route answered
500, without logging in. Each case is sent to every unsafe route the router has (so routes
added later are covered too), anonymous and logged in.
"""

from __future__ import annotations

import random
import re

import pytest
from aiohttp import web

from therapy.accounts import Role

from .test_practice_http import make_user

MALFORMED = [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--"),
    ("multipart/form-data; boundary=x",
     b"--x\r\nContent-Disposition: form-data; name=csrf_token\r\n\r\nabc"),  # truncated
    ("multipart/form-data; boundary=x", b"no boundary anywhere"),
    ("multipart/form-data; boundary=x", b"--x\r\nnot a header\r\n\r\n1\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x",
     b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n\xff\xfe\r\n--x--\r\n"),
    ("multipart/form-data; boundary=" + "x" * 100, b"--x--"),
    ("application/x-www-form-urlencoded", b"csrf_token=\xff\xfe\xfd"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"a=1"),
]


def unsafe_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, a concrete path) for every state-changing route of the app."""
    out = []
    for route in app.router.routes():
        if route.method not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        pattern = route.resource.canonical
        path = re.sub(r"\{(\w+):[^}]*\|[^}]*\}", lambda m: m.group(0).split(":")[1]
                      .rstrip("}").split("|")[0], pattern)
        path = re.sub(r"\{[^}]*\}", "1", path)
        out.append((route.method, path))
    return sorted(set(out))


async def check(resp, path: str) -> None:
    text = await resp.text()
    assert resp.status == 400, (path, resp.status, text[:300])
    if path.startswith("/api/") or path == "/healthz":
        body = await resp.json()
        assert body["error"]["code"] == "malformed_form" and body["error"]["message"]
    else:
        assert resp.content_type == "text/html" and "could not be read" in text


@pytest.mark.parametrize("logged_in", [False, True])
async def test_malformed_forms_are_400_on_every_unsafe_route(client, logged_in):
    app = client.client.server.app
    routes = unsafe_routes(app)
    assert ("POST", "/login") in routes and len(routes) > 30
    if logged_in:
        make_user(client, "therapist", Role.THERAPIST)
        assert (await client.login("therapist")).status == 200
    await client.prime()
    for method, path in routes:
        for ctype, body in MALFORMED:
            resp = await client.client.request(
                method, path, data=body, headers={"Content-Type": ctype},
                allow_redirects=False)
            await check(resp, path)


async def test_malformed_form_with_csrf_header_reaches_the_page_and_is_still_400(client):
    """With the token in the header the middleware leaves the body alone; the page's own
    form reading must refuse it just as clearly."""
    make_user(client, "therapist", Role.THERAPIST)
    for path in ["/login", "/signup"]:
        for ctype, body in MALFORMED:
            await client.prime()
            resp = await client.client.post(path, data=body, headers={
                "Content-Type": ctype, "X-CSRF-Token": client.csrf}, allow_redirects=False)
            await check(resp, path)
    assert (await client.login("therapist")).status == 200
    for path in ["/account/password", "/practice/patients/1/appointments", "/admin/users/1/role",
                 "/practice/appointments/1/cancel", "/practice/notes/1/edit"]:
        for ctype, body in MALFORMED:
            resp = await client.client.post(path, data=body, headers={
                "Content-Type": ctype, "X-CSRF-Token": client.csrf}, allow_redirects=False)
            if resp.status in (403, 404):
                continue  # refused before the body is read (not this user's, or no such)
            await check(resp, path)


async def test_random_form_bodies_never_give_a_server_error(client):
    """A bounded fuzz of multipart and urlencoded bodies (fixed seed, 400 bodies)."""
    rng = random.Random(1105)
    pieces = [b"--x", b"--x--", b"\r\n", b"Content-Disposition: form-data; name=csrf_token",
              b"Content-Type: text/plain; charset=latin-9", b"filename=\"a.txt\"", b"\xff",
              b"=", b"&", b"%", b"%zz", b"csrf_token", b"\x00", b"\r\n\r\n", b";", b"\""]
    types = ["multipart/form-data; boundary=x", "multipart/form-data; boundary=\"x\"",
             "multipart/form-data", "application/x-www-form-urlencoded",
             "application/x-www-form-urlencoded; charset=utf-16"]
    await client.prime()
    for _ in range(400):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        ctype = rng.choice(types)
        for path in ("/login", "/api/login"):
            resp = await client.client.post(path, data=body, headers={"Content-Type": ctype},
                                            allow_redirects=False)
            assert resp.status < 500, (ctype, body, await resp.text())


# --- Origin ----------------------------------------------------------------------------

async def test_state_changes_from_another_origin_are_refused(client):
    make_user(client, "therapist", Role.THERAPIST)
    await client.prime()
    base = str(client.client.make_url("/")).rstrip("/")
    login = {"username": "therapist", "password": "correct horse battery"}
    for headers in [{"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": base.replace("127.0.0.1", "localhost")},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]:
        resp = await client.post("/api/login", login, headers=headers)
        body = await resp.json()
        assert resp.status == 403 and body["error"]["code"] == "origin_refused", headers
        page = await client.client.post("/login", data={**login, "csrf_token": client.csrf},
                                        headers=headers, allow_redirects=False)
        assert page.status == 403 and "another site" in await page.text()
    # Our own origin (what a browser sends from Haven's pages), or no Origin at all (a
    # client that is not a browser, still bound by the CSRF token), is accepted.
    for headers in [{"Origin": base}, {"Sec-Fetch-Site": "same-origin"}, {},
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"}]:
        resp = await client.post("/api/login", login, headers=headers)
        assert resp.status == 200, (headers, await resp.text())


async def test_public_url_origin_is_accepted_behind_a_proxy(aiohttp_client, make_app):
    from .conftest import Browserish

    c = Browserish(await aiohttp_client(make_app(public_base_url="https://haven.example")))
    await c.prime()
    resp = await c.post("/api/signup", {"username": "sam", "password": "correct horse battery"},
                        headers={"Origin": "https://haven.example"})
    assert resp.status == 201, await resp.text()
    resp = await c.post("/api/logout", headers={"Origin": "http://haven.example"})
    assert resp.status == 403
