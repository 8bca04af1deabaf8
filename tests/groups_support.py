"""A small world of groups for the groups tests: two groups, their facilitators, members of
each, people to remove and ban, a pending request, an open meeting. Built with the groups
library on the app's own database file, then used through HTTP."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from groups import conduct, directory, meetings, membership, schedule
from groups.directory import GroupSettings
from groups.recurrence import format_local, rule_for_start
from therapy import accounts
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.storage import open_database
from web import appkeys

PASSWORD = "correct horse battery"
ZONE = "America/New_York"

# username -> (role, display name). Account names are distinctive so a leak is easy to find.
PEOPLE = {
    "admin-ava": (Role.ADMIN, "Ava Adminperson"),
    "fac-fern": (Role.MODERATOR, "Fern Realfacilitator"),
    "fac-otto": (Role.MODERATOR, "Otto Otherfacilitator"),
    "acct-juniper": (Role.PATIENT, "Julia Realjuniper"),
    "acct-orla": (Role.PATIENT, "Orla Othergroupmember"),
    "acct-victor": (Role.PATIENT, "Victor Removedperson"),
    "acct-bianca": (Role.PATIENT, "Bianca Bannedperson"),
    "acct-rory": (Role.PATIENT, "Rory Requestperson"),
}
# The six viewpoints of the authorisation matrix.
ROLES = {"anonymous": None, "member": "acct-juniper", "other_member": "acct-orla",
         "facilitator": "fac-fern", "other_facilitator": "fac-otto", "admin": "admin-ava"}


@dataclass
class World:
    users: dict[str, accounts.User]
    group_a: int
    group_b: int
    key: str  # group A's first meeting (open, Juniper admitted)
    keys: list[str]  # group A's next meetings
    members: dict[str, int] = field(default_factory=dict)  # username -> member id in A
    invite_a: str = ""  # a live invite token of group A
    invite_a_id: str = ""
    invite_b: str = ""
    room_id: str = ""
    conduct: dict = field(default_factory=dict)  # filled in by tests that need them
    schedule: dict = field(default_factory=dict)
    move_to: str = ""

    def names_of(self, username: str) -> set[str]:
        u = self.users[username]
        return {u.username, u.display_name}


def start_local_soon(minutes: int = 10) -> datetime:
    now = datetime.now(UTC) + timedelta(minutes=minutes)
    return now.astimezone(ZoneInfo(ZONE)).replace(second=0, microsecond=0, tzinfo=None)


def build_world(app) -> World:
    db = open_database(app[appkeys.DATA_DIR].db_path)
    cost = app[appkeys.CONFIG].scrypt_cost
    try:
        users = {name: accounts.create_user(db, name, PASSWORD, role, display, "Europe/Berlin",
                                            cost=cost)
                 for name, (role, display) in PEOPLE.items()}
        admin, fern, otto = users["admin-ava"], users["fac-fern"], users["fac-otto"]
        sys = Actor.system()
        a = directory.create_group(db, admin, GroupSettings(
            name="Anxiety circle", description="A calm weekly group.", tags=["anxiety"],
            visibility="listed", join_policy="approval", capacity=12, time_zone=ZONE),
            lead_user_id=fern.id, actor=sys)
        b = directory.create_group(db, admin, GroupSettings(
            name="Hidden circle", description="By invitation.", tags=["grief"],
            visibility="invite_only", join_policy="open", time_zone="Europe/Berlin"),
            lead_user_id=otto.id, actor=sys)
        start = start_local_soon()
        schedule.set_schedule(db, fern, a, rule_for_start("weekly", start), format_local(start),
                              60, actor=sys)
        b_start = start_local_soon(60 * 24).replace(hour=19, minute=0)
        schedule.set_schedule(db, otto, b, rule_for_start("biweekly", b_start),
                              format_local(b_start), 60, actor=sys)
        token_b, _ = directory.create_invite(db, otto, b, actor=sys)
        cur_a, cur_b = conduct.current(db, a), conduct.current(db, b)
        world = World(users, a, b, "", [], invite_b=token_b)
        for uname, pseudo in (("acct-juniper", "Juniper"), ("acct-victor", "Vale"),
                              ("acct-bianca", "Birch"), ("acct-rory", "Rowan")):
            m = membership.join(db, users[uname], a, pseudonym=pseudo, color="#a8d5c9",
                                conduct_version=cur_a.version, conduct_sha256=cur_a.sha256,
                                actor=sys)
            world.members[uname] = m["member_id"]
            if uname != "acct-rory":
                membership.decide_request(db, fern, a, m["member_id"], True, actor=sys)
        membership.join(db, users["acct-orla"], b, pseudonym="Oriel", color=None,
                        conduct_version=cur_b.version, conduct_sha256=cur_b.sha256,
                        invite=token_b, actor=sys)
        world.members["fac-fern"] = directory.facilitators(db, a)[0]["member_id"]
        membership.update_self(db, fern, a, pseudonym="Sage (facilitator)", actor=sys)
        world.invite_a, info = directory.create_invite(db, fern, a, actor=sys)
        world.invite_a_id = info["id"]
        group = {"id": a, "time_zone": ZONE}
        occ = schedule.upcoming(db, group, limit=4)
        world.key, world.keys = occ[0].key, [o.key for o in occ[1:]]
        meetings.arrive(db, users["acct-juniper"], a, world.key, actor=sys)
        world.room_id, _ = meetings.open_meeting(db, fern, a, world.key, actor=sys)
        meetings.admit(db, fern, a, world.key, world.members["acct-juniper"], actor=sys)
        return world
    finally:
        db.close()


async def login(browserish, username: str) -> None:
    resp = await browserish.login(username, PASSWORD)
    assert resp.status == 200, await resp.text()


def token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
