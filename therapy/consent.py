"""Versioned consent documents and the patient's signatures (and withdrawals) of them.

Documents live as files ``therapy/consent_documents/<id>.v<version>.md``; the newest version
of each is the one offered for signing. A signature records the typed name, the time, the
document version and the SHA-256 of the exact text signed. Withdrawal is recorded, never
deleted, and takes effect for the very next request (every check reads the table).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlite_utils import Database

from therapy import audit, care, permissions
from therapy.accounts import User
from therapy.audit import Actor
from therapy.permissions import Action

DOCUMENTS_DIR = Path(__file__).resolve().parent / "consent_documents"
TELEHEALTH_DOCUMENT = "telehealth"
NOTES_DOCUMENT = "notes"
DOCUMENT_ORDER = (TELEHEALTH_DOCUMENT, NOTES_DOCUMENT)
_FILE_RE = re.compile(r"^([a-z][a-z0-9-]*)\.v([0-9]+)\.md$")
TYPED_NAME_MAX = 100


class ConsentError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ConsentDocument:
    id: str
    version: int
    title: str
    text: str
    sha256: str

    def summary(self) -> dict:
        return {"id": self.id, "version": self.version, "title": self.title,
                "sha256": self.sha256}


@lru_cache(maxsize=1)
def _load_all() -> dict[tuple[str, int], ConsentDocument]:
    docs = {}
    for path in sorted(DOCUMENTS_DIR.glob("*.md")):
        m = _FILE_RE.match(path.name)
        if not m:
            continue
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        title = first.lstrip("# ").strip() or m.group(1)
        docs[(m.group(1), int(m.group(2)))] = ConsentDocument(
            m.group(1), int(m.group(2)), title, text,
            hashlib.sha256(text.encode("utf-8")).hexdigest())
    return docs


def document(doc_id: str, version: int | None = None) -> ConsentDocument | None:
    docs = _load_all()
    if version is not None:
        return docs.get((doc_id, version))
    versions = [v for (d, v) in docs if d == doc_id]
    return docs[(doc_id, max(versions))] if versions else None


def current_documents() -> list[ConsentDocument]:
    ids = sorted({d for d, _ in _load_all()},
                 key=lambda d: (DOCUMENT_ORDER.index(d) if d in DOCUMENT_ORDER else 99, d))
    return [document(d) for d in ids]  # type: ignore[misc]


def has_active(db: Database, patient_id: int, doc_id: str) -> bool:
    """Whether the patient has a signature of ``doc_id`` (any version) not withdrawn."""
    return bool(db.execute(
        "SELECT 1 FROM consent_signatures WHERE patient_id = ? AND document_id = ? "
        "AND withdrawn_at IS NULL", [patient_id, doc_id]).fetchone())


def signatures(db: Database, viewer: User, patient_id: int) -> list[dict]:
    """Every signature of the patient, newest first (withdrawn ones included)."""
    facts = care.patient_facts(db, viewer, patient_id)
    permissions.require(Action.CONSENT_VIEW, care.subject(viewer), facts)
    return [dict(r) for r in db.query(
        "SELECT id, document_id, version, sha256, typed_name, signed_at, withdrawn_at "
        "FROM consent_signatures WHERE patient_id = ? ORDER BY id DESC", [patient_id])]


def status(db: Database, viewer: User, patient_id: int) -> list[dict]:
    """One row per current document: active signature (if any) and whether it is current."""
    sigs = signatures(db, viewer, patient_id)
    out = []
    for doc in current_documents():
        active = next((s for s in sigs if s["document_id"] == doc.id and not s["withdrawn_at"]),
                      None)
        out.append({
            "document": doc.summary(),
            "active": active,
            "signed_current_version": bool(active and active["version"] == doc.version),
        })
    return out


def sign(db: Database, patient: User, doc_id: str, version: int, sha256: str,
         typed_name: str, *, actor: Actor) -> int:
    """Record the patient's signature of exactly the text they were shown."""
    permissions.require(Action.CONSENT_SIGN, care.subject(patient),
                        care.patient_facts(db, patient, patient.id))
    doc = document(doc_id)
    if doc is None:
        raise ConsentError("not_found", "no such consent document", "document_id")
    if version != doc.version or sha256 != doc.sha256:
        raise ConsentError("stale_document",
                           "the document changed since you opened it; read the current "
                           "version and sign again", "version")
    name = " ".join(str(typed_name or "").split())
    if not 2 <= len(name) <= TYPED_NAME_MAX:
        raise ConsentError("invalid_field", "type your full name to sign (2 to 100 characters)",
                           "typed_name")
    with db.atomic():
        if has_active(db, patient.id, doc_id):
            rows = list(db.query(
                "SELECT id, version FROM consent_signatures WHERE patient_id = ? AND "
                "document_id = ? AND withdrawn_at IS NULL", [patient.id, doc_id]))
            if any(r["version"] == version for r in rows):
                raise ConsentError("already_signed", "you have already signed this version")
            # Re-signing a newer version supersedes the older signature.
            db.execute(
                "UPDATE consent_signatures SET withdrawn_at = ?, withdrawn_session = ? "
                "WHERE patient_id = ? AND document_id = ? AND withdrawn_at IS NULL",
                [audit.now_iso(), "superseded", patient.id, doc_id])
        sig_id = db.table("consent_signatures").insert({
            "patient_id": patient.id, "document_id": doc_id, "version": version,
            "sha256": sha256, "typed_name": name, "signed_at": audit.now_iso(),
            "signed_session": actor.session, "withdrawn_at": None,
            "withdrawn_session": None}).last_pk
        audit.record(db, actor, "consent.sign", "consent_signatures", sig_id,
                     patient_id=patient.id, document_id=doc_id, version=version,
                     sha256=sha256)
    return sig_id


def withdraw(db: Database, patient: User, doc_id: str, *, actor: Actor) -> int:
    """Withdraw the patient's active consent to ``doc_id``; returns how many were withdrawn."""
    permissions.require(Action.CONSENT_SIGN, care.subject(patient),
                        care.patient_facts(db, patient, patient.id))
    if document(doc_id) is None:
        raise ConsentError("not_found", "no such consent document", "document_id")
    with db.atomic():
        rows = list(db.query(
            "SELECT id FROM consent_signatures WHERE patient_id = ? AND document_id = ? "
            "AND withdrawn_at IS NULL", [patient.id, doc_id]))
        if not rows:
            raise ConsentError("not_signed", "there is no active consent to withdraw")
        db.execute(
            "UPDATE consent_signatures SET withdrawn_at = ?, withdrawn_session = ? "
            "WHERE patient_id = ? AND document_id = ? AND withdrawn_at IS NULL",
            [audit.now_iso(), actor.session, patient.id, doc_id])
        for r in rows:
            audit.record(db, actor, "consent.withdraw", "consent_signatures", r["id"],
                         patient_id=patient.id, document_id=doc_id)
    return len(rows)


def render_markdown(text: str) -> list[tuple[str, object]]:
    """A tiny, safe subset of Markdown as (kind, content) blocks for the template to escape:
    ("h1"|"h2"|"p", str) and ("ul", [str, …]); ``**bold**`` is kept as plain text."""
    blocks: list[tuple[str, object]] = []
    para: list[str] = []
    items: list[str] = []

    def flush():
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()
        if items:
            blocks.append(("ul", list(items)))
            items.clear()

    for raw in text.splitlines():
        line = raw.strip().replace("**", "")
        if not line:
            flush()
        elif line.startswith("## "):
            flush()
            blocks.append(("h2", line[3:]))
        elif line.startswith("# "):
            flush()
            blocks.append(("h1", line[2:]))
        elif line.startswith("- "):
            if para:
                flush()
            items.append(line[2:])
        else:
            if items:
                flush()
            para.append(line)
    flush()
    return blocks
