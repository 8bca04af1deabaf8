"""Property tests for the account API's input validation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from therapy import accounts
from therapy.accounts import ValidationError
from web.api_accounts import LoginBody, PasswordChangeBody, SignupBody

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
body_dicts = st.dictionaries(
    st.sampled_from(["username", "password", "display_name", "time_zone", "role", "old_password",
                     "new_password"]) | st.text(max_size=12),
    json_values | st.text(min_size=0, max_size=300),
    max_size=6,
)


@given(body_dicts)
def test_body_parsers_accept_or_raise_validation_error_only(data):
    for cls in (SignupBody, LoginBody, PasswordChangeBody):
        try:
            parsed = cls.parse(data)
        except ValidationError as exc:
            assert exc.field and exc.message
            continue
        if cls is SignupBody:
            assert accounts.USERNAME_RE.fullmatch(parsed.username)
            assert accounts.PASSWORD_MIN <= len(parsed.password) <= accounts.PASSWORD_MAX
            assert 1 <= len(parsed.display_name) <= accounts.DISPLAY_NAME_MAX


@given(st.text(max_size=60))
def test_username_normalisation_is_idempotent_and_safe(raw):
    try:
        name = accounts.validate_username(raw)
    except ValidationError:
        return
    assert accounts.validate_username(name) == name
    assert name == name.lower() and name.isascii() and " " not in name
    assert 3 <= len(name) <= 32


@given(st.text(max_size=300))
def test_password_rule(raw):
    try:
        accounts.validate_password(raw)
    except ValidationError:
        assert (len(raw) < 10 or len(raw) > 256 or not raw.strip()
                or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in raw))
    else:
        assert 10 <= len(raw) <= 256 and raw.strip()


@given(st.text(max_size=100))
def test_display_names_never_keep_control_or_format_characters(raw):
    try:
        name = accounts.validate_display_name(raw)
    except ValidationError:
        return
    assert name == " ".join(name.split())
    assert not any(ord(c) < 32 or c in "\u200b\u202e\u2066" for c in name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=body_dicts)
def test_signup_endpoint_answers_every_body_with_json_and_no_5xx(live_server, body):
    """Random bodies against the real running server: a JSON answer, 201 or a 4xx, never 5xx."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(live_server.base_url + "/healthz").read()
    csrf = next(c.value for c in jar if c.name == "haven_csrf")
    req = urllib.request.Request(
        live_server.base_url + "/api/signup", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf},
    )
    try:
        with opener.open(req) as resp:
            status, payload = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        status, payload = err.code, json.loads(err.read())
    assert status == 201 or 400 <= status < 500
    if status == 201:
        assert payload["user"]["role"] == "patient"
    else:
        assert set(payload["error"]) >= {"code", "message"}
