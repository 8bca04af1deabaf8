"""Contract fuzzing: every operation of /api/openapi.json against a real ``haven serve``.

Schemathesis generates requests from the document the server publishes (so operations other
code adds later are fuzzed too) and sends them as each role: anonymous, patient, therapist,
moderator and admin, logged in through the real login with the CSRF token wired as the pages
send it. Each response must pass the document's checks:

* ``not_a_server_error``: no status >= 500;
* ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``: the status, content type, headers and body are the ones
  the document declares for that operation;
* ``ignored_auth``: an operation behind a login refuses the request without it.

Not run: ``positive_data_acceptance``, a heuristic that expects every schema-valid request
to succeed; Haven refuses schema-valid requests that break rules a JSON schema cannot say
(a date outside the window around *now*, a time zone name that does not exist, a consent
hash of another version) with the 422 or 409 the document declares for them.

Also, every method a path does not declare must be a 405 whose ``Allow`` names the declared
ones (schemathesis' own ``unsupported_method`` runs only in its coverage phase).

Bounded for CI: ``HAVEN_FUZZ_EXAMPLES`` (default 25) examples per operation per role, from
a fixed seed (``HAVEN_FUZZ_SEED``; change it to explore other inputs).
"""

from __future__ import annotations

import collections
import os
import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.auths import AuthStorage
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import start_live_server

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("HAVEN_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("HAVEN_FUZZ_SEED", "11"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, ignored_auth]
# Admin last: it may change other accounts' roles.
ROLES = ["anonymous", "patient", "therapist", "moderator", "admin"]
MODERATOR_PASSWORD = "moderator correct horse"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_live_server(tmp_path_factory.mktemp("fuzz"))
    made = srv.haven("user", "add", "--data-dir", str(srv.data_dir), "moderator", "--role",
                     "moderator", "--password-stdin", input=MODERATOR_PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    srv.logins["moderator"] = MODERATOR_PASSWORD
    yield srv
    srv.process.terminate()
    srv.process.wait(timeout=10)


class RoleSession:
    """A browser-like requests session for one role: cookies kept, CSRF token sent."""

    def __init__(self, base_url: str, role: str, password: str | None):
        self.base_url, self.role, self.password = base_url, role, password
        self.http = requests.Session()
        self.login()

    def csrf(self) -> str:
        return self.http.cookies.get("haven_csrf", "")

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value for c in self.http.cookies}

    def login(self) -> None:
        self.http.get(self.base_url + "/healthz")
        if self.role == "anonymous":
            return
        r = self.http.post(self.base_url + "/api/login", json={
            "username": self.role, "password": self.password},
            headers={"X-CSRF-Token": self.csrf()})
        assert r.status_code == 200, (self.role, r.status_code, r.text)

    def ensure_logged_in(self) -> None:
        if self.role != "anonymous" and self.http.get(self.base_url + "/api/me").status_code != 200:
            self.login()


def credentials(who: RoleSession) -> AuthStorage:
    """Schemathesis auth that sends ``who``'s current session cookie and CSRF token."""
    storage = AuthStorage()

    @storage.auth(refresh_interval=None)
    class RoleAuth:
        def get(self, case, context):
            return who

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "X-CSRF-Token": data.csrf()}
            case.cookies = {**(case.cookies or {}), **data.cookies()}

    return storage


def test_every_operation_for_every_role_keeps_to_the_document(server):
    schema = schemathesis.openapi.from_url(server.base_url + "/api/openapi.json")
    schema.config.base_url = server.base_url
    # Real credentials only: no made-up session cookies or CSRF headers from the generator.
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    failures: list[str] = []
    statuses: dict[str, collections.Counter] = {}
    passwords = {**server.logins, "anonymous": None}

    def fuzz(op, who: RoleSession, seen: collections.Counter):
        if who.role == "anonymous":  # only the CSRF token: no credentials
            strategy = op.as_strategy(headers={"X-CSRF-Token": who.csrf()},
                                      cookies=who.cookies())
        else:  # the role's real credentials, as explicit auth (ignored_auth removes them)
            strategy = op.as_strategy(auth_storage=credentials(who))

        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            response = case.call(session=requests.Session())
            seen[response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' findings
                failures.append(f"{who.role} {op.label}: {str(exc)[:600]}")
            if op.path in ("/api/logout", "/api/me/password") or response.status_code == 401:
                who.ensure_logged_in()

        run()

    # Everyone logs in first, as they would day to day: the fuzzer's wrong logins from this
    # address must not lock them out (web.ratelimit keeps known-good addresses open).
    sessions = {role: RoleSession(server.base_url, role, passwords[role]) for role in ROLES}
    for role in ROLES:
        seen = statuses.setdefault(role, collections.Counter())
        for op in operations:
            fuzz(op, sessions[role], seen)
    print("\nresponses per role:", {r: dict(sorted(c.items())) for r, c in statuses.items()})
    assert not failures, f"{len(failures)} findings:\n" + "\n".join(failures[:40])
    assert all(sum(c.values()) >= len(operations) for c in statuses.values())


def test_undeclared_methods_are_405_with_allow(server):
    doc = requests.get(server.base_url + "/api/openapi.json").json()
    http = RoleSession(server.base_url, "anonymous", None)
    checked = 0
    for path, ops in doc["paths"].items():
        url = server.base_url + re.sub(r"\{[^}]+\}", "1", path)
        declared = {m.upper() for m in ops}
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - declared:
            r = http.http.request(method, url, headers={"X-CSRF-Token": http.csrf()})
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.json()["error"]["code"] == "method_not_allowed"
            assert declared <= set(r.headers["Allow"].split(",")), (method, path, r.headers)
            checked += 1
    assert checked > 100
