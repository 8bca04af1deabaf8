"""Request bodies of the safety API (alerts, concerns, reports, group notes and their
consent, the account's country): self-validating dataclasses parsed once at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from groups import group_notes, safety
from therapy.accounts import ValidationError


def _text(data: dict, name: str, maxlen: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, f"{name} must be text")
    if len(value) > maxlen:
        raise ValidationError(name, f"{name} is at most {maxlen} characters")
    return value


def _member(data: dict) -> int:
    value = data.get("member_id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**53:
        raise ValidationError("member_id", "member_id must be a member's id")
    return value


MESSAGE = {"type": "string", "maxLength": safety.MESSAGE_MAX}
MEMBER = {"type": "integer", "minimum": 1, "maximum": 2**53 - 1,
          "description": "the membership's id in this group (from the roster)"}


@dataclass(frozen=True)
class AlertBody:
    message: str | None
    schema: ClassVar[dict] = {"type": "object", "properties": {
        "message": {**MESSAGE, "description": "optional words for the facilitator"}}}

    @classmethod
    def parse(cls, data: dict) -> AlertBody:
        return cls(_text(data, "message", safety.MESSAGE_MAX))


@dataclass(frozen=True)
class ConcernBody:
    member_id: int
    note: str | None
    schema: ClassVar[dict] = {"type": "object", "required": ["member_id"],
                              "properties": {"member_id": MEMBER, "note": MESSAGE}}

    @classmethod
    def parse(cls, data: dict) -> ConcernBody:
        return cls(_member(data), _text(data, "note", safety.MESSAGE_MAX))


@dataclass(frozen=True)
class ReportBody:
    member_id: int
    category: str
    text: str | None
    schema: ClassVar[dict] = {"type": "object", "required": ["member_id", "category"],
                              "properties": {
                                  "member_id": MEMBER,
                                  "category": {"type": "string",
                                               "enum": list(safety.CATEGORIES)},
                                  "text": MESSAGE}}

    @classmethod
    def parse(cls, data: dict) -> ReportBody:
        return cls(_member(data), safety.validate_category(data.get("category")),
                   _text(data, "text", safety.MESSAGE_MAX))


@dataclass(frozen=True)
class AlertStatusBody:
    status: str
    schema: ClassVar[dict] = {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": list(safety.ALERT_STATUSES)}}}

    @classmethod
    def parse(cls, data: dict) -> AlertStatusBody:
        if data.get("status") not in safety.ALERT_STATUSES:
            raise ValidationError("status", "status must be open or handled")
        return cls(data["status"])


@dataclass(frozen=True)
class ReportStatusBody:
    status: str
    note: str | None
    schema: ClassVar[dict] = {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": list(safety.REPORT_STATUSES)},
        "note": {**MESSAGE, "description": "what was done (only facilitators and the "
                 "admin see it)"}}}

    @classmethod
    def parse(cls, data: dict) -> ReportStatusBody:
        if data.get("status") not in safety.REPORT_STATUSES:
            raise ValidationError("status", "status must be open, handled or dismissed")
        return cls(data["status"], _text(data, "note", safety.MESSAGE_MAX))


@dataclass(frozen=True)
class NotesConsentBody:
    version: int
    sha256: str
    schema: ClassVar[dict] = {"type": "object", "required": ["version", "sha256"],
                              "properties": {
                                  "version": {"type": "integer", "minimum": 1,
                                              "maximum": 10**6},
                                  "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}

    @classmethod
    def parse(cls, data: dict) -> NotesConsentBody:
        version, digest = data.get("version"), data.get("sha256")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValidationError("version", "version must be the document's version number")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValidationError("sha256", "sha256 must be the document's hash")
        return cls(version, digest)


@dataclass(frozen=True)
class NoteTextBody:
    text: str
    schema: ClassVar[dict] = {"type": "object", "required": ["text"], "properties": {
        "text": {"type": "string", "maxLength": group_notes.NOTE_MAX}}}

    @classmethod
    def parse(cls, data: dict) -> NoteTextBody:
        if "text" not in data:
            raise ValidationError("text", "text is required")
        return cls(group_notes.validate_text(data["text"]))


@dataclass(frozen=True)
class NoteEditBody:
    text: str | None
    close: bool
    schema: ClassVar[dict] = {"type": "object", "properties": {
        "text": {"type": "string", "maxLength": group_notes.NOTE_MAX},
        "close": {"type": "boolean", "description": "finish the note (no more edits)"}}}

    @classmethod
    def parse(cls, data: dict) -> NoteEditBody:
        text = data.get("text")
        close = data.get("close", False)
        if not isinstance(close, bool):
            raise ValidationError("close", "close must be true or false")
        return cls(group_notes.validate_text(text) if text is not None else None, close)


@dataclass(frozen=True)
class CountryBody:
    country: str | None
    schema: ClassVar[dict] = {"type": "object", "required": ["country"], "properties": {
        "country": {"type": "string", "nullable": True, "pattern": "^([A-Z]{2})?$",
                    "description": "ISO 3166-1 code of a country in the crisis lines "
                                   "(empty or null: use the browser's language)"}}}

    @classmethod
    def parse(cls, data: dict) -> CountryBody:
        value = data.get("country")
        if value is not None and (not isinstance(value, str) or len(value) > 2):
            raise ValidationError("country", "country must be a two-letter code")
        return cls(value or None)
