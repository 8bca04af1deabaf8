"""A group meeting ready for moderation tests: one group with a lead facilitator, a
co-facilitator and members, its meeting open, everyone admitted; join links minted on
demand through groups.meetings (as the pages do), so roles come from the group data."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field

from groups import conduct, directory, meetings, membership, schedule
from groups.directory import GroupSettings
from groups.recurrence import format_local, rule_for_start
from media import signaling as sig
from media.signaling import parse_join_url
from therapy import accounts, rooms
from therapy.accounts import Role
from therapy.audit import Actor
from therapy.storage import open_database
from web import appkeys

from .groups_support import ZONE, start_local_soon

PASSWORD = "correct horse battery"


@dataclass
class MeetingWorld:
    app: object
    base_url: str
    group_id: int
    key: str
    room_id: str
    users: dict[str, accounts.User] = field(default_factory=dict)  # pseudonym -> user
    member_ids: dict[str, int] = field(default_factory=dict)  # pseudonym -> member id

    def db(self):
        return open_database(self.app[appkeys.DATA_DIR].db_path)

    def write(self, fn):
        """``fn(db)`` in a transaction on the test's own connection, tried again if the
        server's writer committed between its read and its write (SQLite's WAL then refuses
        the upgrade at once with "database is locked"; the app itself has one writer)."""
        for attempt in range(20):
            db = self.db()
            try:
                return fn(db)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 19:
                    raise
            finally:
                db.close()
            time.sleep(0.05)
        raise AssertionError("unreachable")

    def admit(self, who: str) -> None:
        self.write(lambda db: meetings.admit(db, self.users["Sage"], self.group_id, self.key,
                                             self.member_ids[who], actor=Actor.system()))

    def link(self, who: str) -> str:
        """A fresh join link for this person, as the meeting page would get it."""
        got = self.write(lambda db: meetings.join_link(db, self.users[who], self.group_id,
                                                       self.key, actor=Actor.system()))
        assert got is not None, f"{who} is not admitted"
        room_id, token = got
        return rooms.join_url(self.base_url, room_id, token)


def build_meeting(app, base_url: str, members: int = 2, *, co: bool = True,
                  admit: bool = True) -> MeetingWorld:
    """Lead "Sage", co-facilitator "Cedar" (if ``co``), members "M1".."Mn" in the lobby,
    admitted unless ``admit`` is false (then :meth:`MeetingWorld.admit` them)."""
    db = open_database(app[appkeys.DATA_DIR].db_path)
    cost = app[appkeys.CONFIG].scrypt_cost
    sys = Actor.system()
    try:
        def user(name, role):
            return accounts.create_user(db, name, PASSWORD, role, name.title(), "UTC", cost=cost)

        admin = user("mod-admin", Role.ADMIN)
        lead = user("mod-lead", Role.MODERATOR)
        cof = user("mod-co", Role.MODERATOR) if co else None
        gid = directory.create_group(db, admin, GroupSettings(
            name="Moderated circle", description="Weekly.", tags=["anxiety"],
            visibility="listed", join_policy="open", capacity=16, time_zone=ZONE),
            lead_user_id=lead.id, co_user_ids=[cof.id] if cof else [], actor=sys)
        start = start_local_soon()
        schedule.set_schedule(db, lead, gid, rule_for_start("weekly", start),
                              format_local(start), 60, actor=sys)
        key = schedule.upcoming(db, {"id": gid, "time_zone": ZONE}, limit=1)[0].key
        world = MeetingWorld(app, base_url, gid, key, "")
        facs = {r["user_id"]: {"member_id": r["id"]} for r in db.query(
            "SELECT id, user_id FROM group_members WHERE group_id = ?", [gid])}
        membership.update_self(db, lead, gid, pseudonym="Sage", actor=sys)
        world.users["Sage"], world.member_ids["Sage"] = lead, facs[lead.id]["member_id"]
        if cof:
            membership.update_self(db, cof, gid, pseudonym="Cedar", actor=sys)
            world.users["Cedar"], world.member_ids["Cedar"] = cof, facs[cof.id]["member_id"]
        world.room_id, _ = meetings.open_meeting(db, lead, gid, key, actor=sys)
        cur = conduct.current(db, gid)
        for i in range(1, members + 1):
            name = f"M{i}"
            u = user(f"mod-m{i}", Role.PATIENT)
            m = membership.join(db, u, gid, pseudonym=name, color="#a8d5c9",
                                conduct_version=cur.version, conduct_sha256=cur.sha256,
                                actor=sys)
            world.users[name], world.member_ids[name] = u, m["member_id"]
            meetings.arrive(db, u, gid, key, actor=sys)
            if admit:
                meetings.admit(db, lead, gid, key, m["member_id"], actor=sys)
        return world
    finally:
        db.close()


class Peer:
    """A signaling-only participant (no media): joins with a fresh identity card, records
    every server message, sends typed messages."""

    def __init__(self, url: str):
        from media.e2ee import IdentityKeys

        self.join = parse_join_url(url)
        self.identity = IdentityKeys.generate()
        self.messages: list = []
        self.participant_id = ""
        self._session = None
        self._ws = None
        self._reader = None

    async def start(self) -> Peer:
        import aiohttp

        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.join.signaling_url)
        await self.send(sig.Join(self.join.room_id, self.join.token,
                                 self.identity.card().to_dict()))
        self._reader = asyncio.get_running_loop().create_task(self._read())
        joined = await self.wait(lambda m: isinstance(m, sig.Joined | sig.Error))
        if isinstance(joined, sig.Error):
            await self.close()
            raise ConnectionError(joined.code)
        self.participant_id = joined.participant_id
        return self

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type.name != "TEXT":
                break
            self.messages.append(sig.parse_server_message(msg.data))

    async def send(self, message) -> None:
        await self._ws.send_str(message.to_json())

    async def wait(self, predicate, timeout: float = 10.0, since: int = 0):
        end = asyncio.get_running_loop().time() + timeout
        while True:
            for m in self.messages[since:]:
                if predicate(m):
                    return m
            if asyncio.get_running_loop().time() > end:
                raise TimeoutError(f"no such message; got {[m.type for m in self.messages]}")
            await asyncio.sleep(0.02)

    def last_state(self) -> dict | None:
        states = [m for m in self.messages if isinstance(m, sig.Moderation)]
        return states[-1].state if states else None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._reader is not None:
            self._reader.cancel()


def raw_token(world: MeetingWorld, who: str) -> str:
    """A valid, unused token of this membership for the meeting, minted directly (as a link
    issued by any path would be): a ban must block it too."""
    import hashlib

    db = world.db()
    try:
        meeting = meetings.meeting_for_room(db, world.room_id)
        token = rooms.issue_token(db, world.room_id, who, user_id=world.users[who].id)
        db.table("group_meeting_tokens").insert({
            "token_id": hashlib.sha256(token.encode()).hexdigest(), "meeting_id": meeting["id"],
            "member_id": world.member_ids[who], "issued_at": "2026-01-01T00:00:00+00:00"})
        return rooms.join_url(world.base_url, world.room_id, token)
    finally:
        db.close()


class Ledger:
    """Frames counted at each receiving client, by sender and by when they were sent.

    Every sender's frames are recorded as they are encrypted (SFrame KID and counter, the
    time); every payload a receiver gets from the SFU is looked up by its header. So "what
    reached whom, of what was sent after a moment" holds however late a loaded machine
    processes its packets."""

    def __init__(self):
        self.sent: dict[tuple[int, int], tuple[str, float]] = {}
        self.got: dict[str, list[tuple[str, float]]] = {}
        self.keep_payloads = False
        self.payloads: list[tuple[str, float, bytes]] = []  # (receiver, sent at, payload)

    def attach(self, client, name: str) -> None:
        import time

        from media.sframe import SFrameError, decode_header

        encrypt = client._encrypt

        def on_encrypt(frame: bytes) -> bytes:
            out = encrypt(frame)
            if out:
                header, _ = decode_header(out)
                self.sent[(header.kid, header.ctr)] = (name, time.monotonic())
            return out

        client._encrypt = on_encrypt
        got = self.got.setdefault(name, [])
        on_payload = client.on_payload

        def received(mid, payload, *seq):
            try:
                header, _ = decode_header(payload)
                entry = self.sent.get((header.kid, header.ctr))
            except SFrameError:
                entry = None
            got.append(entry if entry is not None else ("?", 0.0))
            if self.keep_payloads and entry is not None:
                self.payloads.append((name, entry[1], bytes(payload)))
            on_payload(mid, payload, *seq)

        client.on_payload = received

    def heard(self, receiver: str, sender: str, since: float, until: float) -> int:
        return sum(1 for who, t in self.got.get(receiver, ()) if who == sender
                   and since <= t < until)
