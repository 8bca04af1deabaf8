"""Accounts over the real app and a real SQLite file: sign-up, login, logout, roles, CSRF."""

from __future__ import annotations

import logging
import re

import pytest

from therapy import accounts
from therapy.accounts import Role
from therapy.storage import open_database
from web import appkeys
from web.routing import PUBLIC

PW = "correct horse battery"


async def test_signup_login_logout_cycle(client):
    r = await client.signup("sam", display_name="Sam")
    assert r.status == 201
    assert (await r.json())["user"]["role"] == "patient"
    me = await client.get("/api/me")
    assert me.status == 200 and (await me.json())["user"]["username"] == "sam"

    assert (await client.post("/api/logout")).status == 200
    assert (await client.get("/api/me")).status == 401

    r = await client.login("SAM", PW)  # usernames are case-insensitive
    assert r.status == 200
    assert (await client.get("/api/me")).status == 200


async def test_session_cookie_is_httponly_and_strict(client):
    r = await client.signup("cookie-check")
    set_cookie = ",".join(r.headers.getall("Set-Cookie"))
    assert "haven_session=" in set_cookie
    session_part = [c for c in r.headers.getall("Set-Cookie") if c.startswith("haven_session=")][0]
    assert "HttpOnly" in session_part and "SameSite=Strict" in session_part


async def test_wrong_password_is_401_with_json_error(client):
    await client.signup("robin")
    await client.post("/api/logout")
    r = await client.login("robin", "not the password")
    assert r.status == 401
    body = await r.json()
    assert body["error"]["code"] == "invalid_credentials"
    assert (await client.get("/api/me")).status == 401
    # an unknown user looks exactly the same
    r2 = await client.login("nobody-here", "not the password")
    assert r2.status == 401 and (await r2.json())["error"] == body["error"]


async def test_login_rate_limited_after_repeated_failures(client):
    await client.signup("kit")
    await client.post("/api/logout")
    statuses = [(await client.login("kit", f"wrong password {i}")).status for i in range(5)]
    # Three free tries, then a growing wait (tests/test_hardening_login.py has the policy).
    assert statuses[:3] == [401] * 3 and statuses[4] == 429
    r = await client.login("kit", PW)  # even the right password waits while limited
    assert r.status == 429
    assert (await r.json())["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0


async def test_rate_limit_is_per_username(client):
    await client.signup("alpha-user")
    await client.signup("beta-user")
    await client.post("/api/logout")
    for i in range(5):
        await client.login("alpha-user", f"wrong {i} attempt")
    assert (await client.login("beta-user", PW)).status == 200


async def test_post_without_csrf_token_is_rejected(client):
    r = await client.post("/api/signup", {"username": "mallory", "password": PW}, csrf=False)
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "csrf_failed"
    r = await client.send("POST", "/api/signup", {"username": "mallory", "password": PW},
                          csrf=False, headers={"X-CSRF-Token": "x" * 32})
    assert r.status == 403
    # nothing was created
    r = await client.signup("mallory")
    assert r.status == 201


async def test_form_post_without_csrf_field_is_rejected_with_a_page(client):
    await client.prime()
    r = await client.client.post("/login", data={"username": "a", "password": "b"})
    assert r.status == 403
    assert "text/html" in r.headers["Content-Type"]
    assert "CSRF" in await r.text()


async def test_form_login_with_csrf_field_works(client):
    await client.signup("formy")
    await client.post("/api/logout")
    r = await client.client.post(
        "/login",
        data={"username": "formy", "password": PW, "csrf_token": client.csrf, "next": "/account"},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/account"


async def test_login_redirect_is_never_off_site(client):
    await client.signup("redir")
    await client.post("/api/logout")
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = await client.client.post(
            "/login",
            data={"username": "redir", "password": PW, "csrf_token": client.csrf, "next": target},
            allow_redirects=False,
        )
        assert r.headers["Location"] == "/"
        await client.post("/api/logout")


async def _make_user(client, username: str, role: Role) -> None:
    app = client.client.server.app
    db = open_database(app[appkeys.DATA_DIR].db_path)
    try:
        accounts.create_user(db, username, PW, role, cost=app[appkeys.CONFIG].scrypt_cost)
    finally:
        db.close()


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_patient_is_denied_every_route_not_meant_for_patients(client):
    """Every API operation whose roles exclude patients answers 403 to a patient."""
    await client.signup("plain-patient")
    api = client.client.server.app[appkeys.API]
    restricted = [op for op in api.operations if op.auth != PUBLIC and Role.PATIENT not in op.auth]
    assert restricted, "there must be staff-only routes to check"
    for op in restricted:
        r = await client.send(op.method, _fill(op.path), json={})
        assert r.status == 403, (op.method, op.path, r.status)
        assert (await r.json())["error"]["code"] == "forbidden"


async def test_anonymous_is_401_on_every_non_public_route(client):
    api = client.client.server.app[appkeys.API]
    for op in api.operations:
        if op.auth == PUBLIC:
            continue
        r = await client.send(op.method, _fill(op.path), json={})
        assert r.status == 401, (op.method, op.path, r.status)


async def test_admin_changes_role_and_it_is_audited(client, new_client):
    await _make_user(client, "root-admin", Role.ADMIN)
    await client.signup("future-therapist")
    me = await (await client.get("/api/me")).json()
    target = me["user"]["id"]

    admin = await new_client(client)
    assert (await admin.login("root-admin")).status == 200
    r = await admin.send("PUT", f"/api/users/{target}/role", {"role": "therapist"})
    assert r.status == 200 and (await r.json())["user"]["role"] == "therapist"
    # the changed user's sessions end, so the new role applies from the next login
    assert (await client.get("/api/me")).status == 401

    db = open_database(client.client.server.app[appkeys.DATA_DIR].db_path)
    rows = list(db.query("SELECT * FROM audit_log WHERE action = 'user.role_change'"))
    db.close()
    assert len(rows) == 1 and rows[0]["target_id"] == str(target)
    assert '"after": "therapist"' in rows[0]["detail"]


async def test_invalid_role_value_is_422(client, new_client):
    await _make_user(client, "admin2", Role.ADMIN)
    assert (await client.login("admin2")).status == 200
    r = await client.send("PUT", "/api/users/1/role", {"role": "superuser"})
    assert r.status == 422
    assert (await r.json())["error"]["field"] == "role"


async def test_password_change_ends_other_sessions(client, new_client):
    await client.signup("changer")
    other = await new_client(client)
    assert (await other.login("changer")).status == 200
    r = await client.post("/api/me/password", {"old_password": PW, "new_password": "a new long passphrase"})
    assert r.status == 200
    assert (await client.get("/api/me")).status == 200
    assert (await other.get("/api/me")).status == 401
    await client.post("/api/logout")
    assert (await client.login("changer", PW)).status == 401
    assert (await client.login("changer", "a new long passphrase")).status == 200


async def test_wrong_old_password_does_not_change_it(client):
    await client.signup("careful")
    r = await client.post("/api/me/password", {"old_password": "wrong wrong wrong", "new_password": "x" * 12})
    assert r.status == 401
    await client.post("/api/logout")
    assert (await client.login("careful", PW)).status == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ({"data": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ({"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400, "malformed_json"),
        ({"data": b"username=a", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ({"json": {"username": "okname", "password": PW, "admin": True}}, 422, "invalid_field"),
        ({"json": {"username": 5, "password": PW}}, 422, "invalid_field"),
        ({"json": {"username": "ok-name"}}, 422, "invalid_field"),
        ({"data": b'{"username": "' + b"a" * 70000 + b'"}', "headers": {"Content-Type": "application/json"}}, 413, "payload_too_large"),
    ],
)
async def test_malformed_bodies_get_json_errors(client, kwargs, status, code):
    await client.prime()
    headers = {"X-CSRF-Token": client.csrf, **kwargs.pop("headers", {})}
    r = await client.client.post("/api/signup", headers=headers, **kwargs)
    assert r.status == status
    body = await r.json()
    assert body["error"]["code"] == code and body["error"]["message"]


async def test_unknown_api_path_and_wrong_method_are_json(client):
    r = await client.get("/api/no-such-thing")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await client.send("DELETE", "/api/environments")
    assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


async def test_unknown_page_is_a_readable_html_page(client):
    r = await client.get("/no/such/page")
    assert r.status == 404
    assert "text/html" in r.headers["Content-Type"]
    assert "We could not find that page" in await r.text()


async def test_security_headers(client):
    r = await client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    script_src = [d for d in csp.split(";") if d.strip().startswith("script-src")][0]
    assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_logs_never_hold_passwords_or_tokens(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "very secret passphrase 123"
    await client.signup("logcheck", password=secret)
    await client.post("/api/logout")
    await client.login("logcheck", "another wrong passphrase")
    r = await client.login("logcheck", secret)
    token = [c.value for c in client.client.session.cookie_jar if c.key == "haven_session"][0]
    from web.logs import JsonFormatter

    formatter = JsonFormatter()
    text = "\n".join(formatter.format(rec) for rec in caplog.records)
    assert r.status == 200
    assert '"route": "/api/login"' in text  # the access log did record the requests
    assert secret not in text and token not in text and client.csrf not in text


async def test_login_failures_and_logins_are_audited(client):
    await client.signup("audited")
    await client.post("/api/logout")
    await client.login("audited", "wrong password here")
    await client.login("audited", PW)
    db = open_database(client.client.server.app[appkeys.DATA_DIR].db_path)
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY id")]
    db.close()
    assert actions.count("user.login") == 2  # at sign-up and now
    assert "user.login_failed" in actions and "user.logout" in actions


async def test_openapi_documents_every_api_route(client):
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    app = client.client.server.app
    for op in app[appkeys.API].operations:
        assert op.method.lower() in doc["paths"][op.doc_path]
    # and nothing under /api is routed without being documented
    for resource in app.router.resources():
        path = re.sub(r"\{(\w+):\\d\{1,15\}\}", r"{\1}", resource.canonical)
        if path.startswith("/api/"):
            assert path in doc["paths"], path


async def test_healthz_and_environments(client):
    assert await (await client.get("/healthz")).json() == {"status": "ok"}
    envs = (await (await client.get("/api/environments")).json())["environments"]
    assert {"beach", "forest"} <= {e["id"] for e in envs}
    r = await client.get("/api/environments/moon")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
