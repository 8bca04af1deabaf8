"""Consented group notes: a facilitator writes notes of a meeting only while every person
present has given (the current version of) consent to group notes for that group.

* The consent document is versioned (``groups/consent_documents/group-notes.v<N>.md``) and
  each signature records member, version, SHA-256 of the text and time; withdrawal is
  recorded, never deleted, and takes effect for the very next request.
* The server refuses a note written or edited while someone present lacks consent:
  :class:`ConsentMissing` (code ``consent_missing``, the pseudonyms missing) goes to the
  facilitator only; members see only whether notes are being taken (:func:`indicator`).
* Notes are sealed under the group's key (groups.group_keys); every read is audited.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from sqlite_utils import Database

from groups import access, group_keys, presence, schedule
from groups.errors import GroupError
from groups.permissions import Action
from groups.recurrence import format_local
from therapy import audit
from therapy.accounts import User, ValidationError
from therapy.audit import Actor
from therapy.consent import ConsentDocument
from therapy.keyfile import MasterKeyring
from therapy.sealing import SealingError

DOCUMENTS_DIR = Path(__file__).resolve().parent / "consent_documents"
DOCUMENT_ID = "group-notes"
NOTE_MAX = 20_000
_FILE_RE = re.compile(r"^group-notes\.v([0-9]+)\.md$")


class ConsentMissing(GroupError):
    def __init__(self, missing: list[str]):
        super().__init__("consent_missing", "notes paused: not everyone has consented "
                         f"({', '.join(missing)})")
        self.missing = missing


@lru_cache(maxsize=1)
def _documents() -> dict[int, ConsentDocument]:
    out = {}
    for path in DOCUMENTS_DIR.glob("group-notes.v*.md"):
        m = _FILE_RE.match(path.name)
        if m:
            text = path.read_text(encoding="utf-8")
            out[int(m.group(1))] = ConsentDocument(
                DOCUMENT_ID, int(m.group(1)), text.splitlines()[0].lstrip("# ").strip(), text,
                hashlib.sha256(text.encode("utf-8")).hexdigest())
    return out


def document(version: int | None = None) -> ConsentDocument:
    docs = _documents()
    return docs[max(docs) if version is None else version]


# --- consent ------------------------------------------------------------------------------

def _active(db: Database, member_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM group_notes_consents WHERE member_id = ? AND "
                         "withdrawn_at IS NULL ORDER BY id DESC LIMIT 1", [member_id]))
    return dict(rows[0]) if rows else None


def consented(db: Database, member_id: int) -> bool:
    row = _active(db, member_id)
    return bool(row and row["version"] == document().version)


def consent_status(db: Database, user: User, gid: int) -> dict:
    ctx = access.load_for(db, user, gid, Action.NOTES_CONSENT)
    mid = ctx.member["id"]
    active = _active(db, mid)
    last = db.execute("SELECT withdrawn_at FROM group_notes_consents WHERE member_id = ? AND "
                      "withdrawn_at IS NOT NULL ORDER BY id DESC LIMIT 1", [mid]).fetchone()
    doc = document()
    return {"document": {**doc.summary(), "text": doc.text},
            "consented": bool(active and active["version"] == doc.version),
            "signed_at": active["signed_at"] if active else None,
            "signed_version": active["version"] if active else None,
            "withdrawn_at": last[0] if last and not active else None}


def give_consent(db: Database, user: User, gid: int, version: object, sha256: object, *,
                 actor: Actor) -> dict:
    doc = document()
    if version != doc.version or sha256 != doc.sha256:
        raise ValidationError("version", "that is not the current consent text; reload the "
                              "page and read it again")
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.NOTES_CONSENT)
        mid = ctx.member["id"]
        if not consented(db, mid):
            db.execute("UPDATE group_notes_consents SET withdrawn_at = ? WHERE member_id = ? "
                       "AND withdrawn_at IS NULL", [audit.now_iso(), mid])
            db.table("group_notes_consents").insert({
                "group_id": ctx.group_id, "member_id": mid, "version": doc.version,
                "sha256": doc.sha256, "signed_at": audit.now_iso(), "withdrawn_at": None})
            audit.record(db, actor, "group_notes.consent", "group_members", mid,
                         group_id=gid, version=doc.version)
        return consent_status(db, user, gid)


def withdraw_consent(db: Database, user: User, gid: int, *, actor: Actor) -> dict:
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.NOTES_CONSENT)
        mid = ctx.member["id"]
        n = db.execute("UPDATE group_notes_consents SET withdrawn_at = ? WHERE member_id = ? "
                       "AND withdrawn_at IS NULL", [audit.now_iso(), mid]).rowcount
        if n:
            audit.record(db, actor, "group_notes.consent_withdrawn", "group_members", mid,
                         group_id=gid)
        status = consent_status(db, user, gid)
    status["message"] = ("Your consent is withdrawn: no notes are taken while you are "
                         "present. Notes taken before now stay in the group's record.")
    return status


# --- the state of a meeting's notes -------------------------------------------------------

def missing(db: Database, meeting_id: int, author_id: int | None = None) -> list[str]:
    """Pseudonyms of the people present (the author aside) without current consent."""
    return [p["pseudonym"] or "(member)" for p in presence.present(db, meeting_id)
            if p["id"] != author_id and not consented(db, p["id"])]


def _open_note(db: Database, meeting_id: int) -> dict | None:
    rows = list(db.query("SELECT * FROM group_notes WHERE meeting_id = ? AND status = 'open' "
                         "ORDER BY id DESC LIMIT 1", [meeting_id]))
    return dict(rows[0]) if rows else None


def state(db: Database, meeting_id: int) -> dict:
    """"off" (no note open), "on" (a note open, everyone present consents) or "paused"."""
    note = _open_note(db, meeting_id)
    if note is None:
        return {"state": "off", "missing": []}
    gone = missing(db, meeting_id, note["author_id"])
    return {"state": "paused" if gone else "on", "missing": gone, "note_id": note["id"]}


def indicator(db: Database, user: User, gid: int) -> dict:
    """What members see: whether notes are being taken in the group's open meeting (never
    who is missing consent)."""
    access.load_for(db, user, gid, Action.NOTES_STATUS)
    rows = list(db.query("SELECT id FROM group_meetings WHERE group_id = ? AND status = 'open'",
                         [gid]))
    states = [state(db, r["id"])["state"] for r in rows]
    taking = "on" in states
    return {"taking_notes": taking, "state": "on" if taking else (
        "paused" if "paused" in states else "off")}


def _meeting(db: Database, ctx, key: str) -> dict:
    occ = schedule.find(db, ctx.group, key)
    rows = list(db.query("SELECT * FROM group_meetings WHERE group_id = ? AND original_local = ?",
                         [ctx.group_id, format_local(occ.original)]))
    if not rows or rows[0]["status"] != "open":
        raise GroupError("not_open", "notes are taken during an open meeting")
    return dict(rows[0])


def _check_consent(db: Database, meeting_id: int, author_id: int) -> None:
    gone = missing(db, meeting_id, author_id)
    if gone:
        raise ConsentMissing(gone)


def validate_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("text", "text must be text")
    if len(value) > NOTE_MAX:
        raise ValidationError("text", f"a note is at most {NOTE_MAX} characters")
    return value.replace("\r\n", "\n")


def editor(db: Database, user: User, gid: int, key: str) -> dict:
    """The facilitator's view of a meeting's notes: the state, who is missing consent."""
    ctx = access.load_for(db, user, gid, Action.NOTES_WRITE)
    meeting = _meeting(db, ctx, key)
    return {"meeting_id": meeting["id"], **state(db, meeting["id"]),
            "present": [p["pseudonym"] for p in presence.present(db, meeting["id"])]}


def start_note(db: Database, ring: MasterKeyring, user: User, gid: int, key: str,
               text: object, *, actor: Actor) -> dict:
    body = validate_text(text)
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.NOTES_WRITE)
        meeting = _meeting(db, ctx, key)
        _check_consent(db, meeting["id"], ctx.member["id"])
        if _open_note(db, meeting["id"]) is not None:
            raise GroupError("note_open", "this meeting already has a note being written; "
                             "edit that one")
        now = audit.now_iso()
        nid = db.table("group_notes").insert({
            "group_id": gid, "meeting_id": meeting["id"], "author_id": ctx.member["id"],
            "body": b"", "status": "open", "created_at": now, "updated_at": now}).last_pk
        db.execute("UPDATE group_notes SET body = ? WHERE id = ?",
                   [group_keys.seal(db, ring, gid, "group_notes", nid, "body", body), nid])
        audit.record(db, actor, "group_notes.create", "group_notes", nid, group_id=gid,
                     meeting_id=meeting["id"])
        return {"id": nid, "status": "open", **state(db, meeting["id"])}


def edit_note(db: Database, ring: MasterKeyring, user: User, gid: int, note_id: int,
              text: object | None, close: bool, *, actor: Actor) -> dict:
    body = validate_text(text) if text is not None else None
    with db.atomic():
        ctx = access.load_for(db, user, gid, Action.NOTES_WRITE)
        note = _note(db, gid, note_id)
        if note["status"] != "open":
            raise GroupError("note_closed", "this note is finished; it can no longer change")
        if body is not None:
            _check_consent(db, note["meeting_id"], note["author_id"])
            db.execute("UPDATE group_notes SET body = ? WHERE id = ?",
                       [group_keys.seal(db, ring, gid, "group_notes", note["id"], "body",
                                        body), note["id"]])
        changes = {"updated_at": audit.now_iso()}
        if close:
            changes["status"] = "closed"
        db.table("group_notes").update(note["id"], changes)
        audit.record(db, actor, "group_notes.update", "group_notes", note["id"], group_id=gid,
                     body_changed=body is not None, closed=close, by=ctx.member["id"])
        return {"id": note["id"], "status": "closed" if close else "open",
                **state(db, note["meeting_id"])}


def _note(db: Database, gid: int, note_id: int) -> dict:
    rows = list(db.query("SELECT * FROM group_notes WHERE id = ? AND group_id = ?",
                         [note_id, gid])) if 0 < note_id < access.MAX_ID else []
    if not rows:
        raise GroupError("not_found", "no such note in this group")
    return dict(rows[0])


def read_notes(db: Database, ring: MasterKeyring, user: User, gid: int, *,
               actor: Actor) -> list[dict]:
    """Every note of the group, opened for a facilitator; each read audited."""
    with db.atomic():
        access.load_for(db, user, gid, Action.NOTES_READ)
        out = []
        for r in db.query("SELECT n.*, m.starts_at FROM group_notes n JOIN group_meetings m "
                          "ON m.id = n.meeting_id WHERE n.group_id = ? ORDER BY n.id DESC "
                          "LIMIT 200", [gid]):
            try:
                text = group_keys.open_sealed(db, ring, gid, "group_notes", r["id"], "body",
                                              r["body"])
            except SealingError:
                text = None
            out.append({"id": r["id"], "meeting_id": r["meeting_id"],
                        "meeting_starts_at": r["starts_at"], "status": r["status"],
                        "text": text, "created_at": r["created_at"],
                        "updated_at": r["updated_at"]})
            audit.record(db, actor, "group_notes.read", "group_notes", r["id"], group_id=gid)
        return out


def open_meetings(db: Database, user: User, gid: int) -> list[dict]:
    """The facilitator's note editor for each open meeting of the group: its key, the state
    (on / paused with who is missing / off) and the open note's id."""
    ctx = access.load_for(db, user, gid, Action.NOTES_WRITE)
    out = []
    for r in db.query("SELECT * FROM group_meetings WHERE group_id = ? AND status = 'open' "
                      "ORDER BY starts_at", [ctx.group_id]):
        key = r["original_local"].replace("-", "").replace(":", "")
        out.append({"key": key, "meeting_id": r["id"], "starts_at": r["starts_at"],
                    **state(db, r["id"]),
                    "present": [p["pseudonym"] for p in presence.present(db, r["id"])]})
    return out
