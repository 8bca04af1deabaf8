"""The groups' authorisation matrix: every group operation in /api/openapi.json, as each of
{anonymous, member, other group's member, facilitator of this group, facilitator of another
group, admin}, on a real app and database. Each answer must be the expected status, a status
the operation documents, never a 5xx; and no response body shown to a person may hold the
account name or username of anyone else in the groups (the audited reveal excepted)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Browserish
from tests.conftest import test_config as config_for
from tests.groups_support import ROLES, World, build_world, login
from web import appkeys
from web.app import create_app

ANON, MEMBER, OTHER, FAC, OFAC, ADMIN = ROLES


@dataclass
class Op:
    method: str
    template: str  # as in /api/openapi.json
    expect: dict[str, int]  # role -> status
    path: Callable[[World], str] | None = None
    body: Callable[[World], dict] | None = None
    reveals: bool = False  # the response may name the member's account (audited reveal)


def expect(ok: tuple[str, ...], status: int = 200, *, denied: int = 403,
           **special: int) -> dict[str, int]:
    out = {r: (status if r in ok else denied) for r in ROLES}
    out[ANON] = 401
    out.update(special)
    return out


LOGGED_IN = (MEMBER, OTHER, FAC, OFAC, ADMIN)
RUNS = (FAC, ADMIN)
G = "/api/groups/{group_id}"
M = G + "/meetings/{key}"
MEM = G + "/members/{member_id}"


def ga(w: World, rest: str = "") -> str:
    return f"/api/groups/{w.group_a}{rest}"


# In order: reads, then changes that leave the world usable, then the destructive ones.
OPS = [
    Op("GET", "/api/groups", expect(LOGGED_IN)),
    Op("GET", "/api/groups/mine", expect(LOGGED_IN)),
    Op("GET", "/api/groups/all", expect((ADMIN,))),
    Op("GET", G, expect(LOGGED_IN), lambda w: ga(w)),
    # An invite-only group does not exist for those outside it.
    Op("GET", G, expect((OTHER, OFAC, ADMIN), denied=404),
       lambda w: f"/api/groups/{w.group_b}"),
    Op("GET", G + "/conduct", expect(LOGGED_IN), lambda w: ga(w, "/conduct")),
    Op("GET", G + "/meetings", expect(LOGGED_IN), lambda w: ga(w, "/meetings?days=30")),
    Op("GET", G + "/members", expect(RUNS), lambda w: ga(w, "/members")),
    Op("GET", G + "/attendance", expect(RUNS), lambda w: ga(w, "/attendance")),
    Op("GET", G + "/invites", expect(RUNS), lambda w: ga(w, "/invites")),
    Op("GET", M, expect((MEMBER, FAC)), lambda w: ga(w, f"/meetings/{w.key}")),
    Op("GET", G + "/membership/attendance", expect((MEMBER, FAC)),
       lambda w: ga(w, "/membership/attendance")),
    Op("GET", "/api/group-invites/{token}", expect(LOGGED_IN),
       lambda w: f"/api/group-invites/{w.invite_a}"),
    Op("GET", "/api/groups/calendar-feed", expect(LOGGED_IN)),
    Op("POST", "/api/groups/calendar-feed", expect(LOGGED_IN)),
    Op("DELETE", "/api/groups/calendar-feed", expect(LOGGED_IN)),
    Op("PATCH", G, expect(RUNS), lambda w: ga(w), lambda w: {"description": "Calm, weekly."}),
    Op("PUT", G + "/conduct", expect(RUNS), lambda w: ga(w, "/conduct"),
       lambda w: {"text": w.conduct["text"]}),
    Op("POST", G + "/conduct/accept", expect((MEMBER, FAC)), lambda w: ga(w, "/conduct/accept"),
       lambda w: {"version": w.conduct["version"], "sha256": w.conduct["sha256"]}),
    Op("PUT", G + "/schedule", expect(RUNS), lambda w: ga(w, "/schedule"),
       lambda w: {"rrule": w.schedule["rrule"], "start_local": w.schedule["start_local"],
                  "duration_minutes": 60}),
    Op("POST", M + "/cancel", expect(RUNS), lambda w: ga(w, f"/meetings/{w.keys[0]}/cancel"),
       lambda w: {"note": "holiday"}),
    Op("POST", M + "/restore", expect(RUNS), lambda w: ga(w, f"/meetings/{w.keys[0]}/restore")),
    Op("POST", M + "/move", expect(RUNS), lambda w: ga(w, f"/meetings/{w.keys[1]}/move"),
       lambda w: {"start_local": w.move_to, "note": "one day later"}),
    Op("POST", G + "/invites", expect(RUNS), lambda w: ga(w, "/invites")),
    Op("POST", G + "/invites/{invite_id}/revoke", expect(RUNS),
       lambda w: ga(w, f"/invites/{w.invite_a_id}/revoke")),
    Op("PATCH", G + "/membership", expect((MEMBER, FAC)), lambda w: ga(w, "/membership"),
       lambda w: {"color": "#c7b8ea", "feed_shows_name": False}),
    Op("POST", M + "/lobby", expect((MEMBER, FAC)), lambda w: ga(w, f"/meetings/{w.key}/lobby")),
    Op("POST", M + "/join", expect((MEMBER, FAC)), lambda w: ga(w, f"/meetings/{w.key}/join")),
    Op("POST", M + "/open", expect((FAC,)), lambda w: ga(w, f"/meetings/{w.key}/open")),
    Op("POST", M + "/host-link", expect((FAC,)), lambda w: ga(w, f"/meetings/{w.key}/host-link")),
    Op("POST", M + "/admit", expect((FAC,)), lambda w: ga(w, f"/meetings/{w.key}/admit"),
       lambda w: {"member_id": w.members["acct-juniper"]}),
    Op("PUT", M + "/auto-admit", expect((FAC,)), lambda w: ga(w, f"/meetings/{w.key}/auto-admit"),
       lambda w: {"on": True}),
    Op("POST", MEM + "/decision", expect(RUNS),
       lambda w: ga(w, f"/members/{w.members['acct-rory']}/decision"),
       lambda w: {"approve": True}),
    Op("POST", MEM + "/reveal", expect(RUNS),
       lambda w: ga(w, f"/members/{w.members['acct-juniper']}/reveal"), reveals=True),
    # A facilitator cannot be removed, even by another facilitator or an admin.
    Op("POST", MEM + "/remove", expect((), denied=403),
       lambda w: ga(w, f"/members/{w.members['fac-fern']}/remove"), lambda w: {}),
    Op("POST", MEM + "/remove", expect(RUNS),
       lambda w: ga(w, f"/members/{w.members['acct-victor']}/remove"), lambda w: {}),
    Op("POST", MEM + "/remove", expect(RUNS),
       lambda w: ga(w, f"/members/{w.members['acct-bianca']}/remove"),
       lambda w: {"ban": True}),
    Op("POST", MEM + "/unban", expect(RUNS),
       lambda w: ga(w, f"/members/{w.members['acct-bianca']}/unban")),
    Op("POST", M + "/end", expect((FAC,)), lambda w: ga(w, f"/meetings/{w.key}/end")),
    # Joining: the people already in it are told so; the others ask (approval group).
    Op("POST", G + "/join", {**expect((OTHER, OFAC, ADMIN)), MEMBER: 409, FAC: 409},
       lambda w: ga(w, "/join"),
       lambda w: {"pseudonym": "Newcomer", "conduct_version": w.conduct["version"],
                  "conduct_sha256": w.conduct["sha256"]}),
    # Those who just asked may withdraw; facilitators are unassigned by an admin instead.
    Op("POST", G + "/membership/leave", expect((MEMBER, OTHER, OFAC, ADMIN))
       | {FAC: 403}, lambda w: ga(w, "/membership/leave")),
    Op("POST", G + "/membership/erase", expect((MEMBER, OTHER, OFAC, ADMIN))
       | {FAC: 403}, lambda w: ga(w, "/membership/erase")),
    Op("PUT", G + "/facilitators", expect((ADMIN,)), lambda w: ga(w, "/facilitators"),
       lambda w: {"lead_user_id": w.users["fac-fern"].id,
                  "co_user_ids": [w.users["fac-otto"].id]}),
    Op("POST", "/api/groups", expect((ADMIN,)), None,
       lambda w: {"name": "A new group", "lead_user_id": w.users["fac-otto"].id,
                  "time_zone": "Europe/Berlin", "tags": ["sleep"]}),
    Op("POST", G + "/archive", expect((ADMIN,)), lambda w: ga(w, "/archive")),
]

def test_the_matrix_covers_every_group_operation(make_app):
    spec = make_app()[appkeys.API].openapi("t", "0")
    documented = {(method.upper(), path) for path, ops in spec["paths"].items()
                  for method, entry in ops.items() if "groups" in entry.get("tags", [])}
    covered = {(op.method, op.template) for op in OPS}
    assert len(documented) >= 40
    assert documented == covered, documented ^ covered


@pytest.mark.parametrize("role", list(ROLES))
async def test_every_group_operation_as_every_role(role, aiohttp_client, new_client,
                                                   tmp_path):
    app = create_app(config_for(tmp_path / "data"))
    client = Browserish(await aiohttp_client(app))
    world = build_world(app)
    username = ROLES[role]
    helper = await new_client(client)
    await login(helper, "fac-fern")
    conduct = (await (await helper.get(ga(world, "/conduct"))).json())["conduct"]
    group = (await (await helper.get(ga(world))).json())["group"]
    world.conduct, world.schedule = conduct, group["schedule"]
    # The third meeting moves one day later, in the group's own wall clock.
    start = datetime.fromisoformat(group["next_meetings"][2]["starts_at"]).astimezone(
        ZoneInfo(group["time_zone"])) + timedelta(days=1)
    world.move_to = start.strftime("%Y-%m-%dT%H:%M")
    if username:
        await login(client, username)
    else:
        await client.prime()

    spec = app[appkeys.API].openapi("t", "0")
    others = set()
    for name in world.users:
        if name != username:
            others |= world.names_of(name)
    failures = []
    for op in OPS:
        path = op.path(world) if op.path else op.template
        body = op.body(world) if op.body else None
        resp = await client.send(op.method, path, json=body)
        text = await resp.text()
        want = op.expect[role]
        label = f"{op.method} {path} as {role}"
        if resp.status != want:
            failures.append(f"{label}: {resp.status} (wanted {want}) {text[:200]}")
        documented = spec["paths"][op.template][op.method.lower()]["responses"]
        if str(resp.status) not in documented:
            failures.append(f"{label}: status {resp.status} is not documented")
        if resp.status >= 500:
            failures.append(f"{label}: server error")
        if resp.content_type == "application/json":
            data = json.loads(text)
            if resp.status >= 400:
                assert set(data["error"]) >= {"code", "message"}, label
        if not (op.reveals and resp.status == 200):
            leaked = [n for n in others if re.search(re.escape(n), text, re.IGNORECASE)]
            if leaked:
                failures.append(f"{label}: body names {leaked}")
    assert not failures, "\n".join(failures)
