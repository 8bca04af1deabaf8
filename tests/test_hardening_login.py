"""Fault 7 of issue 11: login throttling must not be a weapon, and the CSRF token rotates at
login.

Before, five wrong passwords from anywhere locked an account for 15 minutes, so anyone could
lock a therapist out just before a session. The HTTP tests connect from different loopback
addresses (127.0.0.x: every one is on ``lo``), so the server sees real, distinct client
addresses with the shipped defaults.
"""

from __future__ import annotations

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from therapy.accounts import Role
from web.ratelimit import LoginLimiter

from .test_practice_http import make_user

PW = "correct horse battery"


class From:
    """A browser at one loopback address: its own cookies and CSRF token."""

    def __init__(self, server, address: str):
        self.server = server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(address, 0)),
            cookie_jar=aiohttp.CookieJar(unsafe=True))

    def csrf(self) -> str:
        return next((c.value for c in self.session.cookie_jar if c.key == "haven_csrf"), "")

    async def login(self, username: str, password: str) -> aiohttp.ClientResponse:
        url = self.server.make_url("/api/login")
        if not self.csrf():
            await self.session.get(self.server.make_url("/healthz"))
        resp = await self.session.post(url, json={"username": username, "password": password},
                                       headers={"X-CSRF-Token": self.csrf()})
        await resp.read()
        return resp

    async def close(self):
        await self.session.close()


async def test_attackers_elsewhere_never_lock_the_therapist_out(client):
    server = client.client.server
    make_user(client, "therapist", Role.THERAPIST)
    clinic = From(server, "127.0.0.2")
    others = [From(server, f"127.0.0.{i}") for i in range(10, 22)]
    try:
        assert (await clinic.login("therapist", PW)).status == 200  # the usual place
        # One attacker hammers the account, then a dozen more join in.
        statuses = [(await others[0].login("therapist", f"guess {i}")).status for i in range(12)]
        assert statuses[:3] == [401] * 3 and 429 in statuses
        for i, attacker in enumerate(others[1:]):
            for j in range(4):
                await attacker.login("therapist", f"guess {i}-{j}")
        # From the therapist's usual address the right password works at once.
        assert (await clinic.login("therapist", PW)).status == 200
        # A new address is slowed (not locked: the wait is bounded and said), because the
        # account is under attack from unknown addresses.
        newcomer = From(server, "127.0.0.40")
        resp = await newcomer.login("therapist", PW)
        assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 15 * 60
        await newcomer.close()
    finally:
        for c in [clinic, *others]:
            await c.close()


async def test_one_address_cannot_spray_many_accounts(client):
    server = client.client.server
    for i in range(25):
        make_user(client, f"user{i}", Role.PATIENT)
    sprayer = From(server, "127.0.0.50")
    try:
        statuses = [(await sprayer.login(f"user{i}", "Winter2026!")).status for i in range(25)]
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
        # Even the right password for an untouched account waits, from that address only.
        assert (await sprayer.login("user24", PW)).status == 429
        elsewhere = From(server, "127.0.0.51")
        assert (await elsewhere.login("user24", PW)).status == 200
        await elsewhere.close()
    finally:
        await sprayer.close()


async def test_own_mistakes_cost_growing_but_bounded_waits(client):
    server = client.client.server
    make_user(client, "kit", Role.PATIENT)
    kit = From(server, "127.0.0.60")
    try:
        assert (await kit.login("kit", PW)).status == 200
        waits = []
        for i in range(8):
            resp = await kit.login("kit", f"typo {i}")
            if resp.status == 429:
                waits.append(int(resp.headers["Retry-After"]))
        assert waits and max(waits) <= 30  # a known-good address: capped
    finally:
        await kit.close()


async def test_csrf_token_rotates_at_login(client):
    make_user(client, "therapist", Role.THERAPIST)
    await client.prime()
    before = client.csrf
    resp = await client.login("therapist")
    body = await resp.json()
    assert resp.status == 200 and body["csrf_token"] == client.csrf != before
    # The token from before the login no longer counts.
    stale = await client.client.post("/api/practice/invites", headers={"X-CSRF-Token": before})
    assert stale.status == 403 and (await stale.json())["error"]["code"] == "csrf_failed"
    assert (await client.post("/api/practice/invites")).status == 201
    # The login form rotates it too.
    await client.post("/api/logout")
    form_before = client.csrf
    page = await client.client.post("/login", data={
        "username": "therapist", "password": PW, "csrf_token": form_before},
        allow_redirects=False)
    assert page.status == 303 and client.csrf != form_before


# --- the limiter on its own (a fake clock) -------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def limiter(clock) -> LoginLimiter:
    return LoginLimiter(5, 20, 15 * 60, clock=clock)


def test_pair_delays_double_after_the_free_attempts_and_a_success_resets():
    clock = Clock()
    lim = limiter(clock)
    waits = []
    for _ in range(8):
        lim.failed("sam", "a")
        waits.append(lim.retry_after("sam", "a") or 0)
        clock.now += 10_000  # let the wait pass before the next try
    assert waits[:3] == [0, 0, 0]
    assert waits[3:6] == [1.0, 2.0, 4.0]
    lim.succeeded("sam", "a")
    lim.failed("sam", "a")
    assert lim.retry_after("sam", "a") is None


@given(attacks=st.lists(st.tuples(st.sampled_from(["therapist", "sam", "kit"]),
                                  st.integers(1, 60), st.floats(0, 120)), max_size=300))
def test_a_known_good_address_is_never_delayed_by_others(attacks):
    clock = Clock()
    lim = limiter(clock)
    lim.succeeded("therapist", "clinic")
    for user, addr, dt in attacks:
        clock.now += dt
        if lim.retry_after(user, f"10.0.0.{addr}") is None:
            lim.failed(user, f"10.0.0.{addr}")
    assert lim.retry_after("therapist", "clinic") is None


@given(failures=st.integers(0, 200), gaps=st.floats(0, 5))
def test_a_known_good_address_waits_at_most_its_cap(failures, gaps):
    clock = Clock()
    lim = limiter(clock)
    lim.succeeded("kit", "home")
    for _ in range(failures):
        if lim.retry_after("kit", "home") is None:
            lim.failed("kit", "home")
        clock.now += gaps
    wait = lim.retry_after("kit", "home")
    assert wait is None or wait <= lim.known_max_delay


def test_memory_is_bounded():
    clock = Clock()
    lim = LoginLimiter(5, 20, 900, clock=clock, max_keys=100)
    for i in range(1000):
        lim.failed(f"user{i}", f"addr{i}")
        lim.succeeded(f"u{i}", f"a{i}")
    assert all(len(t) <= 100 for t in (lim._pairs, lim._addresses, lim._accounts, lim._known))
