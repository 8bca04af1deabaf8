"""``haven serve --demo`` as a newcomer meets it: a real process on a real data folder."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from http.cookiejar import CookieJar

import pytest

from .conftest import ROOT


def fetch(opener, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    with opener.open(req) as r:
        return r.status, json.loads(r.read())


def test_demo_server_answers_and_the_demo_therapist_can_log_in(live_server):
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = live_server.base_url
    assert fetch(opener, base + "/healthz") == (200, {"status": "ok"})
    status, envs = fetch(opener, base + "/api/environments")
    assert status == 200 and {"beach", "forest"} <= {e["id"] for e in envs["environments"]}
    status, doc = fetch(opener, base + "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.") and "/api/login" in doc["paths"]

    assert set(live_server.logins) >= {"admin", "therapist", "patient", "patient2"}
    csrf = next(c.value for c in jar if c.name == "haven_csrf")
    body = json.dumps({"username": "therapist", "password": live_server.logins["therapist"]})
    status, me = fetch(opener, base + "/api/login", body.encode(),
                       {"Content-Type": "application/json", "X-CSRF-Token": csrf})
    assert status == 200 and me["user"]["role"] == "therapist"
    assert (live_server.data_dir / "demo-logins.txt").stat().st_mode & 0o077 == 0


PEM_PRIVATE_KEY = re.compile(r"-{5}BEGIN [A-Z ]*PRIVATE KEY-{5}")


def test_no_key_secret_or_database_file_is_tracked_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing is tracked")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert files, "git ls-files listed nothing"
    bad = [f for f in files if f.endswith((".key", ".pem", ".db", ".sqlite", ".sqlite3",
                                           "-wal", "-shm", "identity.json", "demo-logins.txt"))]
    assert not bad, bad
    for f in files:
        if f.startswith("tests/vectors/") or not f.endswith((".py", ".js", ".json", ".md")):
            continue
        text = (ROOT / f).read_text(errors="replace")
        assert not PEM_PRIVATE_KEY.search(text), f
