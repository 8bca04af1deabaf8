"""Appointments: a start in a time zone, a duration, an optional weekly repeat.

The start is stored as wall-clock time in the appointment's own zone (``start_local`` plus
``time_zone``), never as a fixed UTC instant: a weekly 18:00 Europe/London session stays at
18:00 London time across the daylight-saving changes, so its UTC instant shifts by an hour,
and a patient in America/New_York sees whatever that is in New York (which itself changes
on other dates). Each occurrence is computed with zoneinfo; a wall time that does not exist
on a given day (the spring-forward gap) moves forward by the gap, and an ambiguous one (the
autumn fold) takes the first of the two.

Changes to one occurrence (moved, cancelled, environment chosen) live in
``appointment_changes`` keyed by the occurrence's index; "this and following" changes split
the series into two appointments.

Dates: every start the API accepts lies between ``PAST_LIMIT`` before now and
``FUTURE_LIMIT`` after (``validate_start``), and a write expands what it stored before it
commits, so a new row can always be shown. A stored row that still cannot be expanded (one
committed by an older server, or damaged) becomes one :class:`BrokenAppointment` entry in
every list, never an exception for the whole page; a cancelled one is not expanded at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from environments import catalog
from therapy import audit, care, permissions
from therapy.accounts import Role, User, ValidationError, validate_time_zone
from therapy.audit import Actor
from therapy.permissions import Action, Facts

MAX_OCCURRENCES = 104  # two years of weekly sessions
DURATION_MIN, DURATION_MAX = 10, 240
CHECK_IN_OPENS = timedelta(minutes=10)  # before the start
# The window for a start the API accepts, around now (in the appointment's zone).
PAST_LIMIT = timedelta(days=366)
FUTURE_LIMIT = timedelta(days=3653)
# Every instant shown must be computable in every zone, also for rows older than the
# window: stay two days clear of datetime's limits (offsets < 1 day, sessions <= 4 hours).
_SAFE_MIN = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
_SAFE_MAX = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)
UNREADABLE = "schedule_unreadable"
PREFERRED_ENVIRONMENT = "beach"


def default_environment() -> str:
    env = catalog.get_environment(PREFERRED_ENVIRONMENT) or catalog.all_environments()[0]
    return env.id


class AppointmentError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def parse_local(value: object, field: str = "start_local") -> datetime:
    """A naive wall-clock time from "YYYY-MM-DDTHH:MM" (seconds are dropped)."""
    if not isinstance(value, str) or not 16 <= len(value) <= 19:
        raise ValidationError(field, f"{field} must look like 2025-03-30T18:00")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"{field} must look like 2025-03-30T18:00") from None
    if dt.tzinfo is not None:
        raise ValidationError(field, f"{field} is a local time: leave out the offset; "
                              "send time_zone instead")
    return dt.replace(second=0, microsecond=0)


def validate_start(value: object, time_zone: str, *, now: datetime | None = None,
                   field: str = "start_local") -> datetime:
    """A start the API accepts: well formed, and from ``PAST_LIMIT`` before now to
    ``FUTURE_LIMIT`` after, both counted in the appointment's own zone."""
    local = parse_local(value, field)
    zone = ZoneInfo(validate_time_zone(time_zone))
    here = (now or datetime.now(UTC)).astimezone(zone).replace(tzinfo=None)
    earliest, latest = here - PAST_LIMIT, here + FUTURE_LIMIT
    if not earliest <= local <= latest:
        raise ValidationError(
            field, f"{field} must be between {earliest.date().isoformat()} and "
            f"{latest.date().isoformat()} (one year back to ten years ahead)")
    return local


def local_to_utc(local: datetime, time_zone: str) -> datetime:
    """The UTC instant of a wall-clock time in a zone (gap: moved forward; fold: first)."""
    return local.replace(tzinfo=ZoneInfo(time_zone), fold=0).astimezone(UTC)


def validate_duration(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            DURATION_MIN <= value <= DURATION_MAX):
        raise ValidationError("duration_minutes",
                              f"duration must be {DURATION_MIN} to {DURATION_MAX} minutes")
    return value


def validate_environment(value: object) -> str:
    if not isinstance(value, str) or catalog.get_environment(value) is None:
        ids = ", ".join(e.id for e in catalog.all_environments())
        raise ValidationError("environment_id", f"environment must be one of: {ids}")
    return value


@dataclass(frozen=True)
class Occurrence:
    appointment_id: int
    index: int
    therapist_id: int
    patient_id: int
    start_utc: datetime
    duration_minutes: int
    time_zone: str  # the appointment's zone
    environment_id: str
    cancelled: bool
    moved: bool
    broken: ClassVar[bool] = False

    @property
    def end_utc(self) -> datetime:
        return self.start_utc + timedelta(minutes=self.duration_minutes)

    @property
    def key(self) -> str:
        return f"{self.appointment_id}-{self.index}"

    def local_start(self, time_zone: str) -> datetime:
        return self.start_utc.astimezone(ZoneInfo(time_zone))

    def check_in_opens(self) -> datetime:
        return self.start_utc - CHECK_IN_OPENS

    def is_open(self, now: datetime) -> bool:
        return not self.cancelled and self.check_in_opens() <= now < self.end_utc

    def public(self, viewer_zone: str | None = None) -> dict:
        zone = viewer_zone or self.time_zone
        local = self.local_start(zone)
        env = catalog.get_environment(self.environment_id)
        return {
            "appointment_id": self.appointment_id,
            "occurrence": self.index,
            "starts_at": self.start_utc.isoformat(),
            "ends_at": self.end_utc.isoformat(),
            "duration_minutes": self.duration_minutes,
            "appointment_time_zone": self.time_zone,
            "time_zone": zone,
            "local_start": local.isoformat(),
            "local_label": format_local(local),
            "environment_id": self.environment_id,
            "environment_name": getattr(env, "name", self.environment_id),
            "cancelled": self.cancelled,
            "moved": self.moved,
            "therapist_id": self.therapist_id,
            "patient_id": self.patient_id,
            "error": None,
        }


@dataclass(frozen=True)
class BrokenAppointment:
    """A stored appointment whose dates cannot be computed: shown as one error entry (with
    the keys of an occurrence's view, neutral values) so the rest of a list still shows."""

    appointment_id: int
    therapist_id: int
    patient_id: int
    time_zone: str
    environment_id: str
    duration_minutes: int
    reason: str
    index: ClassVar[int] = 0
    cancelled: ClassVar[bool] = False
    moved: ClassVar[bool] = False
    broken: ClassVar[bool] = True

    @classmethod
    def from_row(cls, row: dict, reason: str) -> BrokenAppointment:
        return cls(row["id"], row["therapist_id"], row["patient_id"], str(row["time_zone"]),
                   row["environment_id"] or default_environment(),
                   row["duration_minutes"], reason)

    def is_open(self, now: datetime) -> bool:
        return False

    def public(self, viewer_zone: str | None = None) -> dict:
        env = catalog.get_environment(self.environment_id)
        return {
            "appointment_id": self.appointment_id,
            "occurrence": None,
            "starts_at": "",
            "ends_at": "",
            "duration_minutes": self.duration_minutes,
            "appointment_time_zone": self.time_zone,
            "time_zone": viewer_zone or self.time_zone,
            "local_start": "",
            "local_label": "Date cannot be shown",
            "environment_id": self.environment_id,
            "environment_name": getattr(env, "name", self.environment_id),
            "cancelled": False,
            "moved": False,
            "therapist_id": self.therapist_id,
            "patient_id": self.patient_id,
            "error": {"code": UNREADABLE, "message": self.reason},
        }


def format_local(local: datetime) -> str:
    """"Monday 30 March 2026, 18:00 BST" (no locale dependence)."""
    return (f"{local.strftime('%A')} {local.day} {local.strftime('%B %Y')}, "
            f"{local.strftime('%H:%M')} {local.tzname()}")


def _row(db: Database, appointment_id: int) -> dict:
    rows = list(db.query("SELECT * FROM appointments WHERE id = ?", [appointment_id]))
    if not rows:
        raise AppointmentError("not_found", "no such appointment")
    return rows[0]


def _changes(db: Database, appointment_id: int) -> dict[int, dict]:
    return {r["occurrence"]: r for r in db.query(
        "SELECT * FROM appointment_changes WHERE appointment_id = ?", [appointment_id])}


UNREADABLE_MESSAGE = ("this appointment's dates cannot be shown (they are outside the dates "
                      "Haven can handle); cancel it and schedule it again")


def expand(row: dict, changes: dict[int, dict] | None = None) -> list[Occurrence]:
    """Every occurrence of an appointment row, with per-occurrence changes applied.

    Raises AppointmentError ``schedule_unreadable`` for a row whose dates cannot be
    computed and shown in every zone (never OverflowError)."""
    try:
        return _expand(row, changes or {})
    except (OverflowError, ValueError, KeyError, TypeError):
        raise AppointmentError(UNREADABLE, UNREADABLE_MESSAGE) from None


def _expand(row: dict, changes: dict[int, dict]) -> list[Occurrence]:
    base = parse_local(row["start_local"])
    count = row["occurrences"] if row["weekly"] else 1
    out = []
    for i in range(count):
        ch = changes.get(i, {})
        zone = ch.get("time_zone") or row["time_zone"]
        local = parse_local(ch["start_local"]) if ch.get("start_local") else (
            base + timedelta(weeks=i))
        occ = Occurrence(
            appointment_id=row["id"], index=i, therapist_id=row["therapist_id"],
            patient_id=row["patient_id"], start_utc=local_to_utc(local, zone),
            duration_minutes=validate_duration(ch.get("duration_minutes")
                                               or row["duration_minutes"]),
            time_zone=zone,
            environment_id=ch.get("environment_id") or row["environment_id"]
            or default_environment(),
            cancelled=bool(row["cancelled_at"] or ch.get("cancelled_at")),
            moved=bool(ch.get("start_local")),
        )
        if not _SAFE_MIN <= occ.start_utc <= _SAFE_MAX:
            raise OverflowError("occurrence outside the dates Haven can show")
        out.append(occ)
    return out


def expand_entries(row: dict, changes: dict[int, dict] | None = None
                   ) -> list[Occurrence] | list[BrokenAppointment]:
    """For views: the occurrences, or one BrokenAppointment if the row cannot expand."""
    try:
        return expand(row, changes)
    except AppointmentError as exc:
        return [BrokenAppointment.from_row(row, exc.message)]


def occurrences(db: Database, appointment_id: int) -> list[Occurrence]:
    """To act on: raises AppointmentError ``schedule_unreadable`` for a broken row."""
    return expand(_row(db, appointment_id), _changes(db, appointment_id))


def occurrence_entries(db: Database, appointment_id: int
                       ) -> list[Occurrence] | list[BrokenAppointment]:
    """To show: the occurrences, or one error entry for a row that cannot expand."""
    return expand_entries(_row(db, appointment_id), _changes(db, appointment_id))


def occurrence(db: Database, appointment_id: int, index: int) -> Occurrence:
    occ = occurrences(db, appointment_id)
    if not 0 <= index < len(occ):
        raise AppointmentError("not_found", "no such occurrence of this appointment")
    return occ[index]


def occurrence_entry(db: Database, appointment_id: int,
                     index: int) -> Occurrence | BrokenAppointment:
    """To show one occurrence (a visit's): the error entry if its row cannot expand."""
    entries = occurrence_entries(db, appointment_id)
    if entries and entries[0].broken:
        return entries[0]
    if not 0 <= index < len(entries):
        raise AppointmentError("not_found", "no such occurrence of this appointment")
    return entries[index]


def _check_expands(db: Database, *appointment_ids: int) -> None:
    """Build what a write stored before it commits: a row that cannot be shown is refused
    (the caller's transaction rolls back)."""
    for appt_id in appointment_ids:
        try:
            occurrences(db, appt_id)
        except AppointmentError:
            raise ValidationError("start_local", UNREADABLE_MESSAGE) from None


def appointment_facts(user: User, row: dict) -> Facts:
    return Facts(
        is_self=user.role == Role.PATIENT and user.id == row["patient_id"],
        is_author=user.role == Role.THERAPIST and user.id == row["therapist_id"],
    )


def require_view(db: Database, user: User, appointment_id: int) -> dict:
    row = _row(db, appointment_id)
    permissions.require(Action.APPOINTMENT_VIEW, care.subject(user), appointment_facts(user, row))
    return row


def _require_manage(db: Database, therapist: User, row: dict) -> None:
    facts = care.patient_facts(db, therapist, row["patient_id"])
    if therapist.id != row["therapist_id"]:
        facts = Facts()  # another therapist's appointment, even for a shared patient
    permissions.require(Action.APPOINTMENT_MANAGE, care.subject(therapist), facts)


def schedule(db: Database, therapist: User, patient_id: int, start_local: str, time_zone: str,
             duration_minutes: int = 50, *, weekly: bool = False, occurrences: int = 1,
             environment_id: str | None = None, actor: Actor,
             now: datetime | None = None) -> int:
    """Schedule a session (``now``, for the date window, defaults to the clock)."""
    zone = validate_time_zone(time_zone)
    local = validate_start(start_local, zone, now=now)
    duration = validate_duration(duration_minutes)
    if isinstance(occurrences, bool) or not isinstance(occurrences, int) or not (
            1 <= occurrences <= MAX_OCCURRENCES):
        raise ValidationError("occurrences", f"occurrences must be 1 to {MAX_OCCURRENCES}")
    env = validate_environment(environment_id) if environment_id else default_environment()
    permissions.require(Action.APPOINTMENT_MANAGE, care.subject(therapist),
                        care.patient_facts(db, therapist, patient_id))
    with db.atomic():
        appt_id = db.table("appointments").insert({
            "therapist_id": therapist.id, "patient_id": patient_id,
            "start_local": local.isoformat(timespec="minutes"), "time_zone": zone,
            "duration_minutes": duration, "weekly": int(bool(weekly)),
            "occurrences": occurrences if weekly else 1, "environment_id": env,
            "created_at": audit.now_iso(), "cancelled_at": None,
        }).last_pk
        _check_expands(db, appt_id)
        audit.record(db, actor, "appointment.create", "appointments", appt_id,
                     patient_id=patient_id, weekly=bool(weekly))
    return appt_id


def _set_change(db: Database, appointment_id: int, index: int, **values) -> None:
    existing = db.execute(
        "SELECT 1 FROM appointment_changes WHERE appointment_id = ? AND occurrence = ?",
        [appointment_id, index]).fetchone()
    values["updated_at"] = audit.now_iso()
    if existing:
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE appointment_changes SET {sets} WHERE appointment_id = ? "
                   "AND occurrence = ?", [*values.values(), appointment_id, index])
    else:
        db.table("appointment_changes").insert(
            {"appointment_id": appointment_id, "occurrence": index, **values})


def reschedule(db: Database, therapist: User, appointment_id: int, index: int,
               start_local: str, *, time_zone: str | None = None,
               duration_minutes: int | None = None, scope: str = "this",
               actor: Actor, now: datetime | None = None) -> int:
    """Move one occurrence (scope "this") or it and every later one ("following").

    Returns the id of the appointment that now holds the occurrence (a "following" change
    from the middle of a series splits it into a new appointment)."""
    parse_local(start_local)
    if scope not in ("this", "following"):
        raise ValidationError("scope", "scope must be this or following")
    with db.atomic():
        row = _row(db, appointment_id)
        _require_manage(db, therapist, row)
        occ = occurrence(db, appointment_id, index)
        if occ.cancelled:
            raise AppointmentError("cancelled", "that session was cancelled")
        zone = validate_time_zone(time_zone) if time_zone else occ.time_zone
        local = validate_start(start_local, zone, now=now)
        duration = (validate_duration(duration_minutes) if duration_minutes is not None
                    else occ.duration_minutes)
        target = appointment_id
        if scope == "this" or not row["weekly"] or row["occurrences"] == 1:
            _set_change(db, appointment_id, index, start_local=local.isoformat(
                timespec="minutes"), time_zone=zone, duration_minutes=duration)
        elif index == 0:
            db.table("appointments").update(appointment_id, {
                "start_local": local.isoformat(timespec="minutes"), "time_zone": zone,
                "duration_minutes": duration})
            db.execute("DELETE FROM appointment_changes WHERE appointment_id = ?",
                       [appointment_id])
        else:
            remaining = row["occurrences"] - index
            db.table("appointments").update(appointment_id, {"occurrences": index})
            db.execute("DELETE FROM appointment_changes WHERE appointment_id = ? AND "
                       "occurrence >= ?", [appointment_id, index])
            target = db.table("appointments").insert({
                "therapist_id": row["therapist_id"], "patient_id": row["patient_id"],
                "start_local": local.isoformat(timespec="minutes"), "time_zone": zone,
                "duration_minutes": duration, "weekly": 1, "occurrences": remaining,
                "environment_id": row["environment_id"], "created_at": audit.now_iso(),
                "cancelled_at": None,
            }).last_pk
        _check_expands(db, appointment_id, target)
        audit.record(db, actor, "appointment.reschedule", "appointments", appointment_id,
                     patient_id=row["patient_id"], occurrence=index, scope=scope,
                     new_appointment_id=target if target != appointment_id else None)
    return target


def cancel(db: Database, therapist: User, appointment_id: int, index: int | None = None, *,
           scope: str = "this", actor: Actor) -> None:
    """Cancel one occurrence, it and the following ones, or (index None) the whole series."""
    if scope not in ("this", "following"):
        raise ValidationError("scope", "scope must be this or following")
    with db.atomic():
        row = _row(db, appointment_id)
        _require_manage(db, therapist, row)
        now = audit.now_iso()
        if index is None or (scope == "following" and index == 0):
            db.table("appointments").update(appointment_id, {"cancelled_at": now})
        else:
            occurrence(db, appointment_id, index)  # exists?
            if scope == "this":
                _set_change(db, appointment_id, index, cancelled_at=now)
            else:
                db.table("appointments").update(appointment_id, {"occurrences": index})
                db.execute("DELETE FROM appointment_changes WHERE appointment_id = ? AND "
                           "occurrence >= ?", [appointment_id, index])
        audit.record(db, actor, "appointment.cancel", "appointments", appointment_id,
                     patient_id=row["patient_id"], occurrence=index, scope=scope)


def choose_environment(db: Database, patient: User, appointment_id: int, environment_id: str,
                       index: int | None = None, *, actor: Actor) -> None:
    """The patient picks where to meet: for one occurrence, or (index None) for all."""
    env = validate_environment(environment_id)
    with db.atomic():
        row = _row(db, appointment_id)
        permissions.require(Action.ENVIRONMENT_CHOOSE, care.subject(patient),
                            appointment_facts(patient, row))
        if index is None:
            db.table("appointments").update(appointment_id, {"environment_id": env})
            db.execute("UPDATE appointment_changes SET environment_id = NULL "
                       "WHERE appointment_id = ?", [appointment_id])
        else:
            occ = occurrence(db, appointment_id, index)
            if occ.cancelled:
                raise AppointmentError("cancelled", "that session was cancelled")
            _set_change(db, appointment_id, index, environment_id=env)
        audit.record(db, actor, "appointment.environment", "appointments", appointment_id,
                     patient_id=row["patient_id"], occurrence=index, environment_id=env)


def occurrences_for(db: Database, user: User, *, now: datetime | None = None,
                    include_past: bool = False, include_cancelled: bool = False,
                    patient_id: int | None = None,
                    limit: int = 200) -> list[Occurrence | BrokenAppointment]:
    """The user's sessions (as therapist or patient), soonest first. Upcoming means not yet
    ended; ``patient_id`` narrows a therapist's list to one patient.

    An appointment that cannot be expanded comes first, as one BrokenAppointment entry (so
    it is seen and can be cancelled); a cancelled series is not expanded unless
    ``include_cancelled``, and a cancelled broken one is left out."""
    now = now or datetime.now(UTC)
    if user.role == Role.THERAPIST:
        sql, params = "SELECT * FROM appointments WHERE therapist_id = ?", [user.id]
        if patient_id is not None:
            sql += " AND patient_id = ?"
            params.append(patient_id)
    elif user.role == Role.PATIENT:
        sql, params = "SELECT * FROM appointments WHERE patient_id = ?", [user.id]
    else:
        return []
    if not include_cancelled:
        sql += " AND cancelled_at IS NULL"
    broken: list[BrokenAppointment] = []
    out: list[Occurrence] = []
    for row in db.query(sql + " ORDER BY id", params):
        try:
            expanded = expand(row, _changes(db, row["id"]))
        except AppointmentError as exc:
            if not row["cancelled_at"]:
                broken.append(BrokenAppointment.from_row(row, exc.message))
            continue
        for occ in expanded:
            if occ.cancelled and not include_cancelled:
                continue
            if not include_past and occ.end_utc <= now:
                continue
            out.append(occ)
    out.sort(key=lambda o: (o.start_utc, o.appointment_id, o.index))
    return [*broken, *out][:limit]
