"""Loads what the permission rules need: the group, the viewer's membership, the facts.

Storage functions call :func:`load` and then :func:`require`, so every write and every read
of a group goes through ``groups.permissions.decide``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlite_utils import Database

from groups import conduct
from groups.errors import GroupError
from groups.permissions import Action, Facts, Subject, allowed
from groups.permissions import require as _require
from therapy.accounts import User

MAX_ID = 2**53


@dataclass(frozen=True)
class GroupContext:
    subject: Subject
    group: dict | None  # the groups row, with "tags" as a list
    member: dict | None  # the viewer's group_members row
    facts: Facts

    @property
    def group_id(self) -> int:
        if self.group is None:
            raise GroupError("not_found", "there is no such group")
        return self.group["id"]


def subject_of(user: User | None) -> Subject:
    return Subject(user.id, user.role) if user is not None else Subject(None, None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def group_row(db: Database, group_id: int) -> dict | None:
    if isinstance(group_id, bool) or not isinstance(group_id, int) or not 0 < group_id < MAX_ID:
        return None
    rows = list(db.query("SELECT * FROM groups WHERE id = ?", [group_id]))
    if not rows:
        return None
    row = dict(rows[0])
    row["tags"] = json.loads(row["tags"] or "[]")
    return row


def member_row(db: Database, group_id: int, user_id: int | None) -> dict | None:
    if user_id is None:
        return None
    rows = list(db.query("SELECT * FROM group_members WHERE group_id = ? AND user_id = ?",
                         [group_id, user_id]))
    return dict(rows[0]) if rows else None


def member_by_id(db: Database, group_id: int, member_id: int) -> dict:
    if isinstance(member_id, bool) or not isinstance(member_id, int) or not (
            0 < member_id < MAX_ID):
        raise GroupError("not_found", "no such member in this group")
    rows = list(db.query("SELECT * FROM group_members WHERE id = ? AND group_id = ?",
                         [member_id, group_id]))
    if not rows:
        raise GroupError("not_found", "no such member in this group")
    return dict(rows[0])


def invite_valid(db: Database, group_id: int, token: str | None) -> bool:
    if not isinstance(token, str) or not 16 <= len(token) <= 64:
        return False
    rows = list(db.query("SELECT expires_at, revoked_at FROM group_invites WHERE id = ? AND "
                         "group_id = ?", [hash_token(token), group_id]))
    return bool(rows and not rows[0]["revoked_at"]
                and datetime.fromisoformat(rows[0]["expires_at"]) > datetime.now(UTC))


def load(db: Database, user: User | None, group_id: int, *, invite: str | None = None,
         target: dict | None = None) -> GroupContext:
    subject = subject_of(user)
    group = group_row(db, group_id)
    if group is None:
        return GroupContext(subject, None, None, Facts(exists=False))
    member = member_row(db, group["id"], user.id if user else None)
    status = member["status"] if member else "none"
    facts = Facts(
        exists=True,
        listed=group["visibility"] == "listed",
        invited=invite_valid(db, group["id"], invite),
        archived=bool(group["archived_at"]),
        status=status,
        group_role=member["role"] if member and status == "active" else None,
        conduct_current=bool(user and conduct.accepted_current(db, group["id"], user.id)),
        target_group_role=target["role"] if target and target["status"] == "active" else None,
    )
    return GroupContext(subject, group, member, facts)


def require(action: Action, ctx: GroupContext) -> GroupContext:
    _require(action, ctx.subject, ctx.facts)
    return ctx


def load_for(db: Database, user: User | None, group_id: int, action: Action, *,
             invite: str | None = None, target_member_id: int | None = None) -> GroupContext:
    """Load and check in one step. With ``target_member_id``, the check runs again with the
    target's role as a fact, after the first check (so outsiders learn nothing of members)."""
    ctx = require(action, load(db, user, group_id, invite=invite))
    if target_member_id is None:
        return ctx
    target = member_by_id(db, ctx.group_id, target_member_id)
    return require(action, load(db, user, group_id, invite=invite, target=target))


def decide_allowed(action: Action, ctx: GroupContext) -> bool:
    return allowed(action, ctx.subject, ctx.facts)
