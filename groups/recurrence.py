"""Recurring meetings: RFC 5545 rules in wall-clock time, expanded with python-dateutil.

A group's schedule is a first meeting (``start_local``, a wall-clock time in the group's
zone), a duration and an RRULE from a small, strict subset of RFC 5545:

* weekly on one or more weekdays: ``FREQ=WEEKLY;BYDAY=TU,TH``
* every other week: ``FREQ=WEEKLY;INTERVAL=2;BYDAY=WE``
* monthly by weekday: ``FREQ=MONTHLY;BYDAY=2TU`` (second Tuesday; ``-1FR`` the last Friday)

with an optional ``COUNT`` or ``UNTIL`` (never both, as RFC 5545 says). The first meeting
must itself be an occurrence of the rule (RFC 5545 leaves an unsynchronised DTSTART
undefined, and calendar apps disagree about it).

Expansion runs dateutil's ``rrule`` on *naive* wall-clock times (so "every Tuesday 18:00"
stays 18:00 on both sides of a daylight-saving change), and only then gives each
occurrence its UTC instant in the group's zone with zoneinfo: a wall time inside the
spring-forward gap moves forward by the gap (02:30 becomes 03:30); an ambiguous one in the
autumn fold takes the first (earlier) instant. ``docs``-style guarantees, tested with
hypothesis in tests/test_groups_recurrence.py.

Everything here is bounded: dates must lie between a year back and ten years ahead, a
``COUNT`` is at most :data:`MAX_COUNT`, and every expansion runs over a window of at most
:data:`MAX_WINDOW` (an unbounded rule is only ever expanded inside such a window).

Exceptions (:class:`Change`) cancel one occurrence or move it (new start, optional note);
an occurrence is identified by its original wall-clock start (RFC 5545's RECURRENCE-ID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil import rrule as du

from groups.errors import GroupError
from therapy.accounts import ValidationError

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
MAX_COUNT = 520  # ten years of weekly meetings
PAST_LIMIT = timedelta(days=366)
FUTURE_LIMIT = timedelta(days=3653)
MAX_WINDOW = timedelta(days=400)
DURATION_MIN, DURATION_MAX = 15, 240
NOTE_MAX = 200
KEY_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})$")
_LOCAL_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
_PART_RE = re.compile(r"^[A-Z]+=[A-Z0-9,+\-]{1,64}$")
_BYDAY_RE = re.compile(r"^([+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_RE = re.compile(r"^(\d{8})(T(\d{6})(Z)?)?$")


# --- wall clock and instants --------------------------------------------------------------

def now_utc() -> datetime:
    return datetime.now(UTC)


def to_utc(local: datetime, zone: str) -> datetime:
    """The instant of a wall-clock time in ``zone`` (gap: moved forward; fold: the first)."""
    return local.replace(tzinfo=ZoneInfo(zone), fold=0).astimezone(UTC)


def in_zone(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


def parse_local(value: object, field: str = "start_local") -> datetime:
    """A naive wall-clock time from "YYYY-MM-DDTHH:MM" (seconds must be zero if given)."""
    if not isinstance(value, str) or not _LOCAL_RE.fullmatch(value):
        raise ValidationError(field, f"{field} must look like 2026-03-10T18:00 (a local "
                              "time, without an offset)")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"{field} is not a real date and time") from None
    return dt.replace(second=0, microsecond=0)


def format_local(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M")


def occurrence_key(original: datetime) -> str:
    """The URL-safe identity of an occurrence: its original wall-clock start."""
    return original.strftime("%Y%m%dT%H%M")


def parse_key(value: object) -> datetime:
    if not isinstance(value, str) or not (m := KEY_RE.fullmatch(value)):
        raise GroupError("not_found", "no meeting at that time")
    try:
        return datetime(*(int(g) for g in m.groups()))
    except ValueError:
        raise GroupError("not_found", "no meeting at that time") from None


def check_in_window(local: datetime, zone: str, field: str, *,
                    now: datetime | None = None) -> datetime:
    """Refuse dates far away (a year back to ten years ahead): 4xx, never an overflow."""
    now = now or now_utc()
    message = f"{field} must be within a year back and ten years ahead"
    try:
        instant = to_utc(local, zone)
    except (OverflowError, ValueError):
        raise ValidationError(field, message) from None
    if not now - PAST_LIMIT <= instant <= now + FUTURE_LIMIT:
        raise ValidationError(field, message)
    return local


def validate_duration(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (
            DURATION_MIN <= value <= DURATION_MAX):
        raise ValidationError("duration_minutes",
                              f"duration must be {DURATION_MIN} to {DURATION_MAX} minutes")
    return value


def validate_note(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("note", "note must be text")
    text = " ".join(value.split())
    if len(text) > NOTE_MAX:
        raise ValidationError("note", f"note must be at most {NOTE_MAX} characters")
    if any(ord(c) < 32 for c in text):
        raise ValidationError("note", "note contains characters not allowed")
    return text or None


# --- rules --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """A parsed, validated rule from the supported subset (see the module docstring)."""

    freq: str  # WEEKLY | MONTHLY
    interval: int
    byday: tuple[str, ...]  # weekly: ("TU", "TH"); monthly: ("2TU",)
    count: int | None = None
    until: datetime | None = None  # naive wall clock in the group's zone, inclusive
    wkst: str = "MO"

    @classmethod
    def parse(cls, text: object, start_local: datetime) -> Rule:
        """Parse RRULE text strictly; BYDAY defaults to the first meeting's weekday."""
        if not isinstance(text, str) or not 1 <= len(text) <= 200:
            raise ValidationError("rrule", "rrule must be text like FREQ=WEEKLY;BYDAY=TU")
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[6:]
        parts: dict[str, str] = {}
        for part in body.split(";"):
            part = part.strip().upper()
            if not _PART_RE.fullmatch(part):
                raise ValidationError("rrule", f"rrule part {part[:40]!r} is not NAME=VALUE")
            name, value = part.split("=", 1)
            if name in parts:
                raise ValidationError("rrule", f"rrule names {name} twice")
            parts[name] = value
        unknown = set(parts) - {"FREQ", "INTERVAL", "BYDAY", "COUNT", "UNTIL", "WKST"}
        if unknown:
            raise ValidationError("rrule", f"rrule part {sorted(unknown)[0]} is not supported "
                                  "here (use FREQ, INTERVAL, BYDAY, COUNT or UNTIL)")
        freq = parts.get("FREQ")
        if freq not in ("WEEKLY", "MONTHLY"):
            raise ValidationError("rrule", "meetings repeat weekly (FREQ=WEEKLY, optionally "
                                  "INTERVAL=2) or monthly by weekday (FREQ=MONTHLY;BYDAY=2TU)")
        interval = _int(parts.get("INTERVAL", "1"), "INTERVAL")
        wkst = parts.get("WKST", "MO")
        if wkst not in WEEKDAYS:
            raise ValidationError("rrule", "WKST must be a weekday such as MO")
        days = [d for d in parts.get("BYDAY", "").split(",") if d]
        matches = [_BYDAY_RE.fullmatch(d) for d in days]
        if any(m is None for m in matches):
            raise ValidationError("rrule", "BYDAY must list weekdays such as TU or 2TU")
        if freq == "WEEKLY":
            if interval not in (1, 2):
                raise ValidationError("rrule", "weekly meetings repeat every week or every "
                                      "other week (INTERVAL 1 or 2)")
            if any(m.group(1) for m in matches):
                raise ValidationError("rrule", "weekly BYDAY takes plain weekdays (TU, TH)")
            if not days:
                days = [WEEKDAYS[start_local.weekday()]]
            if len(set(days)) != len(days):
                raise ValidationError("rrule", "BYDAY names a weekday twice")
            byday = tuple(sorted(days, key=WEEKDAYS.index))
        else:
            if interval != 1:
                raise ValidationError("rrule", "monthly meetings repeat every month "
                                      "(INTERVAL=1)")
            if len(days) != 1 or not matches[0].group(1):
                raise ValidationError("rrule", "monthly meetings are by weekday: one BYDAY "
                                      "such as 2TU (second Tuesday) or -1FR (last Friday)")
            n = int(matches[0].group(1))
            if n not in ORDINALS:
                raise ValidationError("rrule", "the week of the month must be 1 to 4, or -1 "
                                      "for the last")
            byday = (f"{n}{matches[0].group(2)}",)
        count = until = None
        if "COUNT" in parts and "UNTIL" in parts:
            raise ValidationError("rrule", "give COUNT or UNTIL, not both")
        if "COUNT" in parts:
            count = _int(parts["COUNT"], "COUNT")
            if not 1 <= count <= MAX_COUNT:
                raise ValidationError("rrule", f"COUNT must be 1 to {MAX_COUNT}")
        if "UNTIL" in parts:
            until = _until(parts["UNTIL"])
        return cls(freq, interval, byday, count, until, wkst)

    def text(self) -> str:
        """Canonical text as stored (UNTIL as a floating wall-clock time in the zone)."""
        out = [f"FREQ={self.freq}"]
        if self.interval != 1:
            out.append(f"INTERVAL={self.interval}")
        out.append("BYDAY=" + ",".join(self.byday))
        if self.count is not None:
            out.append(f"COUNT={self.count}")
        if self.until is not None:
            out.append("UNTIL=" + self.until.strftime("%Y%m%dT%H%M%S"))
        if self.wkst != "MO":
            out.append(f"WKST={self.wkst}")
        return ";".join(out)

    def ical(self, zone: str) -> dict:
        """The rule as icalendar's vRecur mapping (UNTIL in UTC, as RFC 5545 requires with
        a zoned DTSTART)."""
        out: dict = {"FREQ": self.freq}
        if self.interval != 1:
            out["INTERVAL"] = self.interval
        out["BYDAY"] = list(self.byday)
        if self.count is not None:
            out["COUNT"] = self.count
        if self.until is not None:
            out["UNTIL"] = to_utc(self.until, zone)
        if self.wkst != "MO":
            out["WKST"] = self.wkst
        return out

    def describe(self, start_local: datetime) -> str:
        """"Every Tuesday and Thursday at 18:00", "Every other Wednesday at 19:30", …"""
        at = start_local.strftime("%H:%M")
        if self.freq == "MONTHLY":
            n, day = int(self.byday[0][:-2]), self.byday[0][-2:]
            text = f"The {ORDINALS[n]} {WEEKDAY_NAMES[WEEKDAYS.index(day)]} of every month"
        else:
            names = [WEEKDAY_NAMES[WEEKDAYS.index(d)] for d in self.byday]
            joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            text = ("Every other " if self.interval == 2 else "Every ") + joined
        text += f" at {at}"
        if self.count is not None:
            text += f", {self.count} meetings" if self.count != 1 else ", once"
        elif self.until is not None:
            text += f", until {self.until.strftime('%d %B %Y').lstrip('0')}"
        return text

    def dateutil(self, start_local: datetime) -> du.rrule:
        weekdays = []
        for d in self.byday:
            wd = getattr(du, d[-2:])
            weekdays.append(wd(int(d[:-2])) if len(d) > 2 else wd)
        return du.rrule(du.WEEKLY if self.freq == "WEEKLY" else du.MONTHLY,
                        dtstart=start_local, interval=self.interval, byweekday=weekdays,
                        count=self.count, until=self.until, wkst=getattr(du, self.wkst))


def _int(value: str, name: str) -> int:
    if not value.isdigit() or len(value) > 4:
        raise ValidationError("rrule", f"{name} must be a small whole number")
    return int(value)


def _until(value: str) -> datetime:
    m = _UNTIL_RE.fullmatch(value)
    if not m:
        raise ValidationError("rrule", "UNTIL must look like 20271231 or 20271231T235900")
    try:
        day = datetime.strptime(m.group(1), "%Y%m%d")
        if m.group(3):
            t = datetime.strptime(m.group(3), "%H%M%S").time()
            return datetime.combine(day.date(), t)
    except ValueError:
        raise ValidationError("rrule", "UNTIL is not a real date") from None
    return datetime.combine(day.date(), time(23, 59, 59))


def rule_for_start(repeat: str, start_local: datetime, *, count: int | None = None,
                   until: date | None = None) -> str:
    """RRULE text for the page's plain choices, derived from the first meeting's date:
    ``weekly``, ``biweekly`` or ``monthly`` (same weekday of the month: the 2nd Tuesday;
    a 5th weekday becomes "the last")."""
    day = WEEKDAYS[start_local.weekday()]
    if repeat == "weekly":
        text = f"FREQ=WEEKLY;BYDAY={day}"
    elif repeat == "biweekly":
        text = f"FREQ=WEEKLY;INTERVAL=2;BYDAY={day}"
    elif repeat == "monthly":
        n = (start_local.day - 1) // 7 + 1
        if n == 5:
            n = -1
        text = f"FREQ=MONTHLY;BYDAY={n}{day}"
    else:
        raise ValidationError("repeat", "repeat must be weekly, biweekly or monthly")
    if count is not None:
        text += f";COUNT={count}"
    elif until is not None:
        text += ";UNTIL=" + until.strftime("%Y%m%d")
    return text


# --- schedules and their occurrences ------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """An exception to the rule for one occurrence."""

    original: datetime  # naive wall clock by the rule
    status: str  # cancelled | moved
    new_start: datetime | None = None  # naive wall clock, for moved
    note: str | None = None


@dataclass(frozen=True)
class Occurrence:
    original: datetime  # by the rule (the RECURRENCE-ID), naive wall clock in the zone
    start_local: datetime  # where it actually is (moved or not), naive wall clock
    start_utc: datetime
    end_utc: datetime
    status: str  # scheduled | moved | cancelled
    note: str | None = None

    @property
    def key(self) -> str:
        return occurrence_key(self.original)

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


@dataclass(frozen=True)
class Schedule:
    rule: Rule
    start_local: datetime
    duration_minutes: int
    zone: str

    @classmethod
    def build(cls, rrule_text: object, start_local: object, duration_minutes: object,
              zone: str, *, now: datetime | None = None) -> Schedule:
        """Validate everything (window, rule, synchronised start, at least one meeting)."""
        start = parse_local(start_local) if not isinstance(start_local, datetime) else start_local
        check_in_window(start, zone, "start_local", now=now)
        rule = Rule.parse(rrule_text, start)
        if rule.until is not None:
            if rule.until < start:
                raise ValidationError("rrule", "UNTIL is before the first meeting: the rule "
                                      "would have no meeting at all")
            check_in_window(rule.until, zone, "rrule", now=now)
        schedule = cls(rule, start, validate_duration(duration_minutes), zone)
        if not schedule.is_occurrence(start):
            raise ValidationError("start_local", "the first meeting must fall on the rule's "
                                  "day (" + rule.describe(start) + ")")
        return schedule

    def _rrule(self) -> du.rrule:
        return self.rule.dateutil(self.start_local)

    def is_occurrence(self, original: datetime) -> bool:
        if original < self.start_local or original - self.start_local > FUTURE_LIMIT + PAST_LIMIT:
            return False
        return bool(self._rrule().between(original, original, inc=True))

    def describe(self) -> str:
        return self.rule.describe(self.start_local)

    def originals_between(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Rule occurrences (naive wall clock) with lo <= t <= hi; the span is capped."""
        if hi - lo > MAX_WINDOW + timedelta(days=5):
            raise GroupError("window_too_large", "ask for at most 400 days of meetings at once")
        return list(self._rrule().between(lo, hi, inc=True))

    def expand(self, after: datetime, before: datetime, changes: dict[datetime, Change]
               | None = None, *, include_cancelled: bool = False) -> list[Occurrence]:
        """Occurrences whose (moved) start instant is in [after, before), soonest first."""
        if before - after > MAX_WINDOW:
            raise GroupError("window_too_large", "ask for at most 400 days of meetings at once")
        changes = changes or {}
        margin = timedelta(days=2)  # any zone's offset, both ways
        lo = in_zone(after, self.zone).replace(tzinfo=None) - margin
        hi = in_zone(before, self.zone).replace(tzinfo=None) + margin
        seen: dict[datetime, Occurrence] = {}
        for original in self.originals_between(lo, hi):
            seen[original] = self.occurrence(original, changes.get(original))
        for original, change in changes.items():
            if (original not in seen and change.status == "moved" and change.new_start
                    and self.is_occurrence(original)):
                seen[original] = self.occurrence(original, change)
        out = [o for o in seen.values()
               if after <= o.start_utc < before and (include_cancelled or not o.cancelled)]
        out.sort(key=lambda o: (o.start_utc, o.original))
        return out

    def occurrence(self, original: datetime, change: Change | None = None) -> Occurrence:
        status, start, note = "scheduled", original, None
        if change is not None:
            note = change.note
            if change.status == "cancelled":
                status = "cancelled"
            elif change.status == "moved" and change.new_start is not None:
                status, start = "moved", change.new_start
        begins = to_utc(start, self.zone)
        return Occurrence(original, start, begins,
                          begins + timedelta(minutes=self.duration_minutes), status, note)

    def find(self, original: datetime, changes: dict[datetime, Change] | None = None
             ) -> Occurrence:
        if not self.is_occurrence(original):
            raise GroupError("not_found", "the schedule has no meeting at that time")
        return self.occurrence(original, (changes or {}).get(original))
