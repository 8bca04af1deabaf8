"""Each group's code of conduct: a versioned markdown document, and who accepted which.

Every group starts from the shared default shipped with Haven (``code_of_conduct.md`` in
this package); facilitators may edit it, which adds a new version. A version is identified
by its number and the SHA-256 of its exact text, and an acceptance records who, which
group, which version and hash, and when. Meetings need the current version accepted: the
check reads the table on every entry, so a new version takes effect at once.

Rendering uses markdown-it-py with raw HTML disabled (so a document can never inject
markup), no images (nothing loads from elsewhere) and its own link validation (no
``javascript:`` links).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from markdown_it import MarkdownIt
from sqlite_utils import Database

from groups.errors import GroupError
from therapy import audit
from therapy.accounts import ValidationError
from therapy.audit import Actor

DEFAULT_PATH = Path(__file__).resolve().parent / "code_of_conduct.md"
TEXT_MAX = 20_000


@dataclass(frozen=True)
class ConductVersion:
    group_id: int
    version: int
    text: str
    sha256: str
    created_at: str

    def summary(self) -> dict:
        return {"version": self.version, "sha256": self.sha256, "created_at": self.created_at}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def default_text() -> str:
    return DEFAULT_PATH.read_text(encoding="utf-8")


def validate_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("text", "the code of conduct must be text (markdown)")
    text = value.replace("\r\n", "\n").strip() + "\n"
    if not 20 <= len(text) <= TEXT_MAX:
        raise ValidationError("text", f"the code of conduct must be 20 to {TEXT_MAX} "
                              "characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t" for c in text):
        raise ValidationError("text", "the code of conduct contains characters not allowed")
    return text


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable("image")
    return md


def render(text: str) -> str:
    """HTML for the page (safe: markdown-it escapes everything; raw HTML is off)."""
    return _markdown().render(text)


def _row(r: dict) -> ConductVersion:
    return ConductVersion(r["group_id"], r["version"], r["text"], r["sha256"], r["created_at"])


def current(db: Database, group_id: int) -> ConductVersion:
    rows = list(db.query("SELECT * FROM group_conduct WHERE group_id = ? ORDER BY version DESC "
                         "LIMIT 1", [group_id]))
    if not rows:
        raise GroupError("not_found", "this group has no code of conduct")
    return _row(rows[0])


def version(db: Database, group_id: int, number: int) -> ConductVersion | None:
    rows = list(db.query("SELECT * FROM group_conduct WHERE group_id = ? AND version = ?",
                         [group_id, number]))
    return _row(rows[0]) if rows else None


def history(db: Database, group_id: int) -> list[dict]:
    return [{"version": r["version"], "sha256": r["sha256"], "created_at": r["created_at"]}
            for r in db.query("SELECT version, sha256, created_at FROM group_conduct WHERE "
                              "group_id = ? ORDER BY version DESC", [group_id])]


def add_version(db: Database, group_id: int, text: str, *, by_user: int | None,
                actor: Actor) -> ConductVersion:
    """A new current version (the caller checked permission). Same text: no new version."""
    text = validate_text(text)
    rows = list(db.query("SELECT MAX(version) AS v FROM group_conduct WHERE group_id = ?",
                         [group_id]))
    last = rows[0]["v"] or 0
    if last:
        cur = current(db, group_id)
        if cur.sha256 == digest(text):
            return cur
    db.table("group_conduct").insert({
        "group_id": group_id, "version": last + 1, "text": text, "sha256": digest(text),
        "created_at": audit.now_iso(), "created_by": by_user})
    audit.record(db, actor, "group.conduct_version", "groups", group_id, version=last + 1,
                 sha256=digest(text))
    return current(db, group_id)


def accepted_current(db: Database, group_id: int, user_id: int) -> bool:
    cur = current(db, group_id)
    return bool(db.execute(
        "SELECT 1 FROM group_conduct_acceptances WHERE group_id = ? AND user_id = ? AND "
        "version = ? AND sha256 = ?", [group_id, user_id, cur.version, cur.sha256]).fetchone())


def accept(db: Database, group_id: int, user_id: int, number: int, sha256: str, *,
           actor: Actor) -> dict:
    """Record acceptance of exactly the version the person read (the caller checked
    permission). A stale version or hash is refused, so nobody accepts text unseen."""
    cur = current(db, group_id)
    if number != cur.version or sha256 != cur.sha256:
        raise GroupError("stale_conduct", "the code of conduct changed since you opened it; "
                         "read the current version and accept again", "version")
    if not accepted_current(db, group_id, user_id):
        row_id = db.table("group_conduct_acceptances").insert({
            "group_id": group_id, "user_id": user_id, "version": cur.version,
            "sha256": cur.sha256, "accepted_at": audit.now_iso(),
            "session": actor.session}).last_pk
        audit.record(db, actor, "group.conduct_accept", "group_conduct_acceptances", row_id,
                     group_id=group_id, version=cur.version, sha256=cur.sha256)
    return acceptance(db, group_id, user_id)


def acceptance(db: Database, group_id: int, user_id: int) -> dict | None:
    """The person's latest acceptance in this group, and whether it is of the current text."""
    rows = list(db.query(
        "SELECT version, sha256, accepted_at FROM group_conduct_acceptances WHERE group_id = ? "
        "AND user_id = ? ORDER BY id DESC LIMIT 1", [group_id, user_id]))
    if not rows:
        return None
    cur = current(db, group_id)
    row = dict(rows[0])
    row["current"] = row["version"] == cur.version and row["sha256"] == cur.sha256
    return row
