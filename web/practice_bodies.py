"""Request bodies of the practice's JSON API: one self-validating dataclass per body, with
its JSON schema (for /api/openapi.json) and a ``parse(dict)`` that raises ValidationError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from therapy import accounts, appointments, consent, notes
from therapy.accounts import ValidationError


def _opt(data: dict, name: str, kind: type | tuple, label: str):
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise ValidationError(name, f"{name} must be {label}")
    if not isinstance(value, kind):
        raise ValidationError(name, f"{name} must be {label}")
    return value


def _req(data: dict, name: str, kind: type | tuple, label: str):
    value = _opt(data, name, kind, label)
    if value is None:
        raise ValidationError(name, f"{name} is required")
    return value


@dataclass(frozen=True)
class AppointmentBody:
    patient_id: int
    start_local: str
    time_zone: str
    duration_minutes: int
    weekly: bool
    occurrences: int
    environment_id: str | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["patient_id", "start_local", "time_zone"],
        "properties": {
            "patient_id": {"type": "integer"},
            "start_local": {"type": "string", "example": "2026-03-30T18:00",
                            "description": "wall-clock time in time_zone"},
            "time_zone": {"type": "string", "example": "Europe/London"},
            "duration_minutes": {"type": "integer", "minimum": appointments.DURATION_MIN,
                                 "maximum": appointments.DURATION_MAX, "default": 50},
            "weekly": {"type": "boolean", "default": False},
            "occurrences": {"type": "integer", "minimum": 1,
                            "maximum": appointments.MAX_OCCURRENCES, "default": 1},
            "environment_id": {"type": "string"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> AppointmentBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-30T18:00")
        appointments.parse_local(start)
        zone = accounts.validate_time_zone(_req(data, "time_zone", str, "a zone name"))
        appointments.validate_start(start, zone)
        weekly = bool(_opt(data, "weekly", bool, "true or false"))
        occurrences = _opt(data, "occurrences", int, "a whole number")
        return cls(
            patient_id=_req(data, "patient_id", int, "a whole number"),
            start_local=start,
            time_zone=zone,
            duration_minutes=appointments.validate_duration(
                _opt(data, "duration_minutes", int, "a whole number") or 50),
            weekly=weekly,
            occurrences=occurrences if occurrences is not None else (12 if weekly else 1),
            environment_id=_opt(data, "environment_id", str, "an environment id"),
        )


@dataclass(frozen=True)
class RescheduleBody:
    occurrence: int
    start_local: str
    time_zone: str | None
    duration_minutes: int | None
    scope: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["occurrence", "start_local"],
        "properties": {
            "occurrence": {"type": "integer", "minimum": 0},
            "start_local": {"type": "string"},
            "time_zone": {"type": "string"},
            "duration_minutes": {"type": "integer"},
            "scope": {"type": "string", "enum": ["this", "following"], "default": "this"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> RescheduleBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-30T18:00")
        appointments.parse_local(start)
        tz = _opt(data, "time_zone", str, "a zone name")
        scope = _opt(data, "scope", str, "this or following") or "this"
        if scope not in ("this", "following"):
            raise ValidationError("scope", "scope must be this or following")
        return cls(_req(data, "occurrence", int, "a whole number"), start,
                   accounts.validate_time_zone(tz) if tz else None,
                   _opt(data, "duration_minutes", int, "a whole number"), scope)


@dataclass(frozen=True)
class CancelBody:
    occurrence: int | None
    scope: str
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "occurrence": {"type": "integer", "minimum": 0,
                           "description": "leave out to cancel the whole series"},
            "scope": {"type": "string", "enum": ["this", "following"], "default": "this"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> CancelBody:
        scope = _opt(data, "scope", str, "this or following") or "this"
        if scope not in ("this", "following"):
            raise ValidationError("scope", "scope must be this or following")
        return cls(_opt(data, "occurrence", int, "a whole number"), scope)


@dataclass(frozen=True)
class EnvironmentBody:
    environment_id: str
    occurrence: int | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["environment_id"],
        "properties": {
            "environment_id": {"type": "string"},
            "occurrence": {"type": "integer", "minimum": 0,
                           "description": "leave out to choose for every session"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> EnvironmentBody:
        env = appointments.validate_environment(
            _req(data, "environment_id", str, "an environment id"))
        return cls(env, _opt(data, "occurrence", int, "a whole number"))


@dataclass(frozen=True)
class ConsentBody:
    document_id: str
    version: int
    sha256: str
    typed_name: str
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["document_id", "version", "sha256", "typed_name"],
        "properties": {
            "document_id": {"type": "string"},
            "version": {"type": "integer"},
            "sha256": {"type": "string", "description": "SHA-256 of the text you read"},
            "typed_name": {"type": "string", "maxLength": consent.TYPED_NAME_MAX},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> ConsentBody:
        return cls(_req(data, "document_id", str, "a document id"),
                   _req(data, "version", int, "a whole number"),
                   _req(data, "sha256", str, "a hex digest"),
                   _req(data, "typed_name", str, "your name"))


@dataclass(frozen=True)
class NoteBody:
    kind: str
    template: str
    sections: dict
    shared_with_patient: bool
    appointment_id: int | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["kind", "template", "sections"],
        "properties": {
            "kind": {"type": "string", "enum": ["progress", "psychotherapy"]},
            "template": {"type": "string", "enum": list(notes.TEMPLATES)},
            "sections": {"type": "object", "additionalProperties": {"type": "string"}},
            "shared_with_patient": {"type": "boolean", "default": False},
            "appointment_id": {"type": "integer"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> NoteBody:
        kind = _req(data, "kind", str, "progress or psychotherapy")
        if kind not in ("progress", "psychotherapy"):
            raise ValidationError("kind", "kind must be progress or psychotherapy")
        template = _req(data, "template", str, "a template name")
        try:
            sections = notes.validate_sections(template, data.get("sections", {}))
        except notes.NoteError as exc:
            raise ValidationError(exc.field or "sections", exc.message) from None
        return cls(kind, template, sections,
                   bool(_opt(data, "shared_with_patient", bool, "true or false")),
                   _opt(data, "appointment_id", int, "a whole number"))


@dataclass(frozen=True)
class NotePatchBody:
    sections: dict | None
    shared_with_patient: bool | None
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "sections": {"type": "object", "additionalProperties": {"type": "string"}},
            "shared_with_patient": {"type": "boolean"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> NotePatchBody:
        return cls(_opt(data, "sections", dict, "an object of text fields"),
                   _opt(data, "shared_with_patient", bool, "true or false"))


@dataclass(frozen=True)
class AddendumBody:
    text: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["text"],
        "properties": {"text": {"type": "string", "maxLength": notes.ADDENDUM_MAX}},
    }

    @classmethod
    def parse(cls, data: dict) -> AddendumBody:
        return cls(_req(data, "text", str, "text"))


@dataclass(frozen=True)
class EraseBody:
    confirm_username: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["confirm_username"],
        "properties": {"confirm_username": {
            "type": "string", "description": "the patient's username, to confirm"}},
    }

    @classmethod
    def parse(cls, data: dict) -> EraseBody:
        return cls(_req(data, "confirm_username", str, "the patient's username"))
