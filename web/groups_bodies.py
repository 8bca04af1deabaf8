"""Request bodies of the groups API: self-validating dataclasses (``parse(dict)`` and a JSON
``schema`` for /api/openapi.json), parsed once at the edge by web.routing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from groups import conduct, directory, membership, recurrence
from groups.directory import GroupSettings
from therapy.accounts import ValidationError


def _opt(data: dict, name: str, kind: type | tuple, label: str) -> Any:
    value = data.get(name)
    if value is None:
        return None
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ValidationError(name, f"{name} must be {label}")
    return value


def _req(data: dict, name: str, kind: type | tuple, label: str) -> Any:
    value = _opt(data, name, kind, label)
    if value is None:
        raise ValidationError(name, f"{name} is required")
    return value


def _id_list(data: dict, name: str) -> list[int]:
    value = data.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 4 or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise ValidationError(name, f"{name} must be a list of at most 4 user ids")
    return value


SETTINGS_PROPERTIES: dict = {
    "name": {"type": "string", "minLength": 1, "maxLength": directory.NAME_MAX},
    "description": {"type": "string", "maxLength": directory.DESCRIPTION_MAX},
    "tags": {"type": "array", "maxItems": directory.MAX_TAGS,
             "items": {"type": "string", "maxLength": 24}},
    "visibility": {"type": "string", "enum": list(directory.VISIBILITIES)},
    "join_policy": {"type": "string", "enum": list(directory.JOIN_POLICIES),
                    "description": "open: join at once; approval: ask, a facilitator decides"},
    "capacity": {"type": "integer", "minimum": directory.CAPACITY_MIN,
                 "maximum": directory.CAPACITY_MAX,
                 "description": "people a meeting holds, facilitators included"},
    "environment_id": {"type": "string"},
    "time_zone": {"type": "string", "example": "America/New_York"},
    "auto_admit": {"type": "boolean", "description": "admit members to meetings "
                   "automatically (the default for new meetings)"},
}


def parse_settings(data: dict) -> GroupSettings:
    name = _opt(data, "name", str, "text")
    desc = _opt(data, "description", str, "text")
    tags = _opt(data, "tags", list, "a list of topics")
    vis = _opt(data, "visibility", str, "listed or invite_only")
    policy = _opt(data, "join_policy", str, "open or approval")
    cap = _opt(data, "capacity", int, "a whole number")
    env = _opt(data, "environment_id", str, "a place id")
    zone = _opt(data, "time_zone", str, "a zone name")
    auto = _opt(data, "auto_admit", bool, "true or false")
    return GroupSettings(
        name=directory.validate_name(name) if name is not None else None,
        description=directory.validate_description(desc) if desc is not None else None,
        tags=directory.validate_tags(tags) if tags is not None else None,
        visibility=directory.validate_choice(vis, "visibility", directory.VISIBILITIES)
        if vis is not None else None,
        join_policy=directory.validate_choice(policy, "join_policy", directory.JOIN_POLICIES)
        if policy is not None else None,
        capacity=directory.validate_capacity(cap) if cap is not None else None,
        environment_id=directory.validate_environment(env) if env is not None else None,
        time_zone=directory.validate_zone(zone) if zone is not None else None,
        auto_admit=auto,
    )


@dataclass(frozen=True)
class GroupCreateBody:
    settings: GroupSettings
    lead_user_id: int
    co_user_ids: list[int]
    conduct_text: str | None
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["name", "lead_user_id"],
        "properties": {
            **SETTINGS_PROPERTIES,
            "lead_user_id": {"type": "integer", "description": "a moderator account"},
            "co_user_ids": {"type": "array", "maxItems": 4, "items": {"type": "integer"}},
            "conduct_text": {"type": "string", "maxLength": conduct.TEXT_MAX,
                             "description": "markdown; leave out for the shared default"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> GroupCreateBody:
        settings = parse_settings(data)
        if settings.name is None:
            raise ValidationError("name", "name is required")
        text = _opt(data, "conduct_text", str, "markdown text")
        return cls(settings, _req(data, "lead_user_id", int, "a user id"),
                   _id_list(data, "co_user_ids"),
                   conduct.validate_text(text) if text is not None else None)


@dataclass(frozen=True)
class GroupUpdateBody:
    settings: GroupSettings
    schema: ClassVar[dict] = {"type": "object", "properties": SETTINGS_PROPERTIES}

    @classmethod
    def parse(cls, data: dict) -> GroupUpdateBody:
        return cls(parse_settings(data))


@dataclass(frozen=True)
class FacilitatorsBody:
    lead_user_id: int
    co_user_ids: list[int]
    schema: ClassVar[dict] = {
        "type": "object",
        "required": ["lead_user_id"],
        "properties": {
            "lead_user_id": {"type": "integer"},
            "co_user_ids": {"type": "array", "maxItems": 4, "items": {"type": "integer"}},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> FacilitatorsBody:
        return cls(_req(data, "lead_user_id", int, "a user id"), _id_list(data, "co_user_ids"))


@dataclass(frozen=True)
class ConductBody:
    text: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 20,
                                "maxLength": conduct.TEXT_MAX, "description": "markdown"}},
    }

    @classmethod
    def parse(cls, data: dict) -> ConductBody:
        return cls(conduct.validate_text(_req(data, "text", str, "markdown text")))


@dataclass(frozen=True)
class AcceptBody:
    version: int
    sha256: str
    schema: ClassVar[dict] = {
        "type": "object", "required": ["version", "sha256"],
        "properties": {"version": {"type": "integer", "minimum": 1},
                       "sha256": {"type": "string", "description": "of the text you read"}},
    }

    @classmethod
    def parse(cls, data: dict) -> AcceptBody:
        return cls(_req(data, "version", int, "a whole number"),
                   _req(data, "sha256", str, "a hex digest"))


@dataclass(frozen=True)
class ScheduleBody:
    rrule: str
    start_local: str
    duration_minutes: int
    schema: ClassVar[dict] = {
        "type": "object", "required": ["rrule", "start_local"],
        "properties": {
            "rrule": {"type": "string", "maxLength": 200, "example": "FREQ=WEEKLY;BYDAY=TU",
                      "description": "RFC 5545 RRULE: FREQ=WEEKLY (INTERVAL 1 or 2, BYDAY "
                      "weekdays) or FREQ=MONTHLY;BYDAY=2TU, optional COUNT or UNTIL"},
            "start_local": {"type": "string", "example": "2026-03-10T18:00",
                            "description": "the first meeting, wall-clock in the group's zone"},
            "duration_minutes": {"type": "integer", "minimum": recurrence.DURATION_MIN,
                                 "maximum": recurrence.DURATION_MAX, "default": 60},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> ScheduleBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-10T18:00")
        recurrence.parse_local(start)
        duration = _opt(data, "duration_minutes", int, "a whole number")
        return cls(_req(data, "rrule", str, "RRULE text"), start,
                   recurrence.validate_duration(duration if duration is not None else 60))


@dataclass(frozen=True)
class MoveBody:
    start_local: str
    note: str | None
    schema: ClassVar[dict] = {
        "type": "object", "required": ["start_local"],
        "properties": {
            "start_local": {"type": "string", "example": "2026-03-11T18:00",
                            "description": "the new start, wall-clock in the group's zone"},
            "note": {"type": "string", "maxLength": recurrence.NOTE_MAX},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> MoveBody:
        start = _req(data, "start_local", str, "a local time like 2026-03-10T18:00")
        recurrence.parse_local(start)
        return cls(start, recurrence.validate_note(_opt(data, "note", str, "text")))


@dataclass(frozen=True)
class NoteBody:
    note: str | None
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {"note": {"type": "string", "maxLength": recurrence.NOTE_MAX}},
    }

    @classmethod
    def parse(cls, data: dict) -> NoteBody:
        return cls(recurrence.validate_note(_opt(data, "note", str, "text")))


@dataclass(frozen=True)
class JoinBody:
    pseudonym: str
    color: str | None
    conduct_version: int
    conduct_sha256: str
    invite: str | None
    schema: ClassVar[dict] = {
        "type": "object", "required": ["pseudonym", "conduct_version", "conduct_sha256"],
        "properties": {
            "pseudonym": {"type": "string", "minLength": 2,
                          "maxLength": membership.PSEUDONYM_MAX,
                          "description": "your name in this group (not your account's)"},
            "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            "conduct_version": {"type": "integer", "minimum": 1},
            "conduct_sha256": {"type": "string"},
            "invite": {"type": "string", "description": "the invite link's token, for "
                       "invite-only groups"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> JoinBody:
        return cls(membership.validate_pseudonym(_req(data, "pseudonym", str, "text")),
                   membership.validate_color(_opt(data, "color", str, "a colour")),
                   _req(data, "conduct_version", int, "a whole number"),
                   _req(data, "conduct_sha256", str, "a hex digest"),
                   _opt(data, "invite", str, "an invite token"))


@dataclass(frozen=True)
class SelfBody:
    pseudonym: str | None
    color: str | None
    feed_shows_name: bool | None
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {
            "pseudonym": {"type": "string", "minLength": 2,
                          "maxLength": membership.PSEUDONYM_MAX},
            "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
            "feed_shows_name": {"type": "boolean", "description": "show the group's name in "
                                "my calendar feed (default: a neutral title)"},
        },
    }

    @classmethod
    def parse(cls, data: dict) -> SelfBody:
        name = _opt(data, "pseudonym", str, "text")
        color = _opt(data, "color", str, "a colour")
        return cls(membership.validate_pseudonym(name, facilitator=True) if name is not None
                   else None,
                   membership.validate_color(color) if color is not None else None,
                   _opt(data, "feed_shows_name", bool, "true or false"))


@dataclass(frozen=True)
class DecisionBody:
    approve: bool
    schema: ClassVar[dict] = {"type": "object", "required": ["approve"],
                              "properties": {"approve": {"type": "boolean"}}}

    @classmethod
    def parse(cls, data: dict) -> DecisionBody:
        return cls(_req(data, "approve", bool, "true or false"))


@dataclass(frozen=True)
class RemoveBody:
    ban: bool
    schema: ClassVar[dict] = {
        "type": "object",
        "properties": {"ban": {"type": "boolean", "default": False,
                               "description": "also refuse them for good"}},
    }

    @classmethod
    def parse(cls, data: dict) -> RemoveBody:
        return cls(bool(_opt(data, "ban", bool, "true or false")))


@dataclass(frozen=True)
class AdmitBody:
    member_id: int
    schema: ClassVar[dict] = {"type": "object", "required": ["member_id"],
                              "properties": {"member_id": {"type": "integer", "minimum": 1}}}

    @classmethod
    def parse(cls, data: dict) -> AdmitBody:
        return cls(_req(data, "member_id", int, "a member id"))


@dataclass(frozen=True)
class SwitchBody:
    on: bool
    schema: ClassVar[dict] = {"type": "object", "required": ["on"],
                              "properties": {"on": {"type": "boolean"}}}

    @classmethod
    def parse(cls, data: dict) -> SwitchBody:
        return cls(_req(data, "on", bool, "true or false"))
