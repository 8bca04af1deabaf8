"""Who may do what in peer groups: every rule in one pure function.

``decide(action, subject, facts)`` looks only at its arguments (no database, no clock), so
storage (groups.*) and HTTP (web.groups_*) ask the same question and get the same answer,
and the whole matrix can be property-tested. ``groups.access`` gathers the :class:`Facts`.

Refusal codes (stable; the web layer maps them to statuses):

* ``unauthenticated``     - log in first
* ``forbidden``           - this person may never do this here
* ``not_found``           - the group is invisible to this person (invite-only, not invited)
* ``banned``              - a facilitator banned this person from the group
* ``conduct_required``    - the current code of conduct has not been accepted yet
* ``archived``            - the group was closed by an admin
* ``already_member``      - joining twice
* ``not_member``          - the person has no membership to act on
* ``facilitator_target``  - members and facilitators are not removed or banned alike
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from therapy.accounts import Role

# The decision and refusal types are the practice's own: one shape for every rule set.
from therapy.permissions import Decision, Denied

__all__ = ["Action", "Decision", "Denied", "Facts", "Subject", "allowed", "decide", "require"]


class Action(StrEnum):
    GROUP_CREATE = "group.create"  # admin
    GROUP_LIST_ALL = "group.list_all"  # admin: every group, listed or not
    GROUP_VIEW = "group.view"  # description, schedule, code of conduct
    GROUP_EDIT = "group.edit"  # description, tags, place, capacity, conduct, auto-admit
    GROUP_ADMINISTER = "group.administer"  # name, visibility, facilitators, archive (admin)
    SCHEDULE_EDIT = "schedule.edit"  # the rule; cancel or move one meeting
    JOIN = "member.join"  # join an open group, or ask to join
    CONDUCT_ACCEPT = "conduct.accept"
    SELF_EDIT = "member.self_edit"  # own pseudonym, colour, feed option
    LEAVE = "member.leave"
    ERASE_SELF = "member.erase_self"
    ROSTER_VIEW = "roster.view"  # every member's pseudonym, status and requests
    MEMBER_REVEAL = "member.reveal"  # the account behind a pseudonym (audited)
    REQUEST_DECIDE = "request.decide"  # approve or decline a join request
    MEMBER_REMOVE = "member.remove"  # also ban and unban
    INVITE_MANAGE = "invite.manage"
    MEETING_RUN = "meeting.run"  # open, admit, auto-admit, end, host link
    MEETING_ATTEND = "meeting.attend"  # lobby, join token
    ATTENDANCE_VIEW = "attendance.view"  # everyone's attendance of this group's meetings
    GROUP_DELETE = "group.delete"  # admin: crypto-shreds its notes, alerts and reports
    # Safety (groups.safety): private alerts, concerns, reports; consented notes.
    ALERT_SEND = "safety.alert_send"  # "let the facilitator know I'm struggling"
    CONCERN_FLAG = "safety.concern_flag"  # a facilitator flags concern about a member
    SAFETY_VIEW = "safety.view"  # the facilitators' safety dashboard (target: a report's)
    SAFETY_HANDLE = "safety.handle"  # mark an alert or report handled / dismissed
    REPORT_FILE = "safety.report"  # report a member's (or a facilitator's) behaviour
    REPORTS_ADMIN = "safety.reports_admin"  # admin: reports against facilitators, all groups
    NOTES_CONSENT = "notes.consent"  # give or withdraw one's own consent to group notes
    NOTES_STATUS = "notes.status"  # whether notes are being taken (the indicator)
    NOTES_WRITE = "notes.write"  # take notes for a meeting (still needs everyone's consent)
    NOTES_READ = "notes.read"  # read the group's notes (audited)


GROUP_ROLES = ("lead", "co", "member")
STATUSES = ("none", "requested", "active", "left", "removed", "banned")


@dataclass(frozen=True)
class Subject:
    user_id: int | None  # None: not logged in
    role: Role | None


@dataclass(frozen=True)
class Facts:
    """What is known about the group the action touches, relative to the subject."""

    exists: bool = True
    listed: bool = False  # visibility "listed" (in the finder)
    invited: bool = False  # the subject holds a live invite link for the group
    archived: bool = False
    status: str = "none"  # the subject's membership status (STATUSES)
    group_role: str | None = None  # the subject's role in the group when status is active
    conduct_current: bool = False  # accepted the group's current code of conduct
    target_group_role: str | None = None  # for actions on another membership

    @property
    def facilitator(self) -> bool:
        return self.status == "active" and self.group_role in ("lead", "co")

    @property
    def member(self) -> bool:
        return self.status == "active"


ALLOW = Decision(True)


def _no(message: str, code: str = "forbidden") -> Decision:
    return Decision(False, code, message)


NOT_FOUND = _no("there is no such group", "not_found")


def decide(action: Action, subject: Subject, facts: Facts) -> Decision:
    if subject.user_id is None or subject.role is None:
        return _no("log in first", "unauthenticated")
    admin = subject.role == Role.ADMIN
    moderator = subject.role == Role.MODERATOR

    if action == Action.GROUP_CREATE:
        return ALLOW if admin else _no("only an admin creates groups")
    if action == Action.GROUP_LIST_ALL:
        return ALLOW if admin else _no("only an admin sees every group")
    if action == Action.REPORTS_ADMIN:
        return ALLOW if admin else _no("only an admin sees reports about facilitators")

    if not facts.exists:
        return NOT_FOUND
    if action == Action.ERASE_SELF:
        # Anyone the group knows may erase their data in it, even once banned or gone.
        if facts.status == "none":
            return _no("you have no membership in this group", "not_member")
        if facts.status == "active" and facts.group_role in ("lead", "co"):
            return _no("facilitators are unassigned by an admin first", "facilitator_target")
        return ALLOW
    # Who can see the group at all: an invite-only group does not exist for outsiders.
    visible = (admin or facts.listed or facts.invited
               or facts.status in ("requested", "active"))
    if not visible:
        return NOT_FOUND
    if facts.status == "banned" and not admin:
        if action == Action.GROUP_VIEW and facts.listed:
            return ALLOW  # a listed group's public page stays readable
        return _no("a facilitator has removed you from this group", "banned")
    facilitator = facts.facilitator and moderator

    if action == Action.GROUP_VIEW:
        return ALLOW

    if action in (Action.GROUP_ADMINISTER, Action.GROUP_DELETE):
        return ALLOW if admin else _no("only an admin can change this")

    # A report (or alert) about a facilitator is the admin's to see and handle, never the
    # facilitators' (who may be the person reported).
    about_facilitator = facts.target_group_role in ("lead", "co")
    if action in (Action.SAFETY_VIEW, Action.SAFETY_HANDLE):
        if about_facilitator:
            return ALLOW if admin else _no("reports about a facilitator go to the admin")
        return ALLOW if (facilitator or admin) else _no(
            "only the group's facilitators see its safety dashboard")
    if action in (Action.NOTES_READ, Action.NOTES_STATUS) and facts.archived:
        # Past notes stay readable (audited) to the facilitators after a group closes.
        if action == Action.NOTES_READ:
            return ALLOW if facilitator else _no("only the group's facilitators read its notes")
        return ALLOW if (facts.member or admin) else _no(
            "only the group's members see this", "not_member")

    if facts.archived and action not in (Action.LEAVE, Action.ROSTER_VIEW,
                                         Action.ATTENDANCE_VIEW, Action.MEMBER_REVEAL):
        return _no("this group has been closed", "archived")

    if action in (Action.GROUP_EDIT, Action.SCHEDULE_EDIT, Action.INVITE_MANAGE,
                  Action.REQUEST_DECIDE):
        return ALLOW if (facilitator or admin) else _no(
            "only the group's facilitators can do that")

    if action in (Action.ROSTER_VIEW, Action.ATTENDANCE_VIEW, Action.MEMBER_REVEAL):
        return ALLOW if (facilitator or admin) else _no(
            "only the group's facilitators see its members")

    if action == Action.MEMBER_REMOVE:
        if not (facilitator or admin):
            return _no("only the group's facilitators can remove members")
        if facts.target_group_role in ("lead", "co"):
            return _no("facilitators are assigned and unassigned by an admin",
                       "facilitator_target")
        return ALLOW

    if action == Action.MEETING_RUN:
        return ALLOW if facilitator else _no("only the group's facilitators run its meetings")

    if action in (Action.CONCERN_FLAG, Action.NOTES_WRITE, Action.NOTES_READ):
        if action == Action.CONCERN_FLAG and about_facilitator:
            return _no("concern is flagged about members; tell the admin about a facilitator",
                       "facilitator_target")
        return ALLOW if facilitator else _no("only the group's facilitators can do that")

    if action in (Action.ALERT_SEND, Action.REPORT_FILE, Action.NOTES_CONSENT):
        if not facts.member:
            return _no("join the group first", "not_member")
        if action == Action.ALERT_SEND and facts.group_role != "member":
            if facts.facilitator:
                return _no("facilitators reach the admin for support", "facilitator_target")
            return _no("join the group first", "not_member")  # (no role: not a member)
        return ALLOW

    if action == Action.NOTES_STATUS:
        return ALLOW if (facts.member or admin) else _no(
            "only the group's members see this", "not_member")

    if action == Action.JOIN:
        if facts.status in ("requested", "active"):
            return _no("you are already in this group (or have asked to join)",
                       "already_member")
        if not (facts.listed or facts.invited):
            return _no("this group is by invitation only")
        return ALLOW

    if action == Action.CONDUCT_ACCEPT:
        # Also someone about to join: the acceptance is recorded with the join itself.
        return ALLOW

    if action in (Action.SELF_EDIT, Action.LEAVE):
        if facts.status not in ("requested", "active"):
            return _no("you are not a member of this group", "not_member")
        if action == Action.LEAVE and facts.group_role in ("lead", "co"):
            return _no("facilitators are unassigned by an admin", "facilitator_target")
        return ALLOW

    if action == Action.MEETING_ATTEND:
        if facts.facilitator:
            return ALLOW if moderator else _no("facilitators need the moderator role")
        if facts.status != "active":
            return _no("join the group first" if facts.status != "requested" else
                       "a facilitator has not accepted your request yet", "not_member")
        if not facts.conduct_current:
            return _no("the group's code of conduct has changed (or you have not accepted "
                       "it yet): read and accept the current version before you join a "
                       "meeting", "conduct_required")
        return ALLOW

    return _no("unknown action")  # pragma: no cover - every Action is handled above


def allowed(action: Action, subject: Subject, facts: Facts) -> bool:
    return decide(action, subject, facts).allowed


def require(action: Action, subject: Subject, facts: Facts) -> None:
    decision = decide(action, subject, facts)
    if not decision.allowed:
        raise Denied(decision)
