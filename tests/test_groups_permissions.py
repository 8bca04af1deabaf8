"""groups.permissions.decide as a pure function, property-tested over every action and
every combination of facts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from groups.permissions import GROUP_ROLES, STATUSES, Action, Facts, Subject, decide
from therapy.accounts import Role

subjects = st.one_of(st.just(Subject(None, None)),
                     st.builds(Subject, st.integers(1, 10), st.sampled_from(list(Role))))
facts = st.builds(Facts, exists=st.booleans(), listed=st.booleans(), invited=st.booleans(),
                  archived=st.booleans(), status=st.sampled_from(STATUSES),
                  group_role=st.one_of(st.none(), st.sampled_from(GROUP_ROLES)),
                  conduct_current=st.booleans(),
                  target_group_role=st.one_of(st.none(), st.sampled_from(GROUP_ROLES)))
actions = st.sampled_from(list(Action))
FACILITATOR_ONLY = {Action.MEETING_RUN}
STAFF = {Action.GROUP_EDIT, Action.SCHEDULE_EDIT, Action.INVITE_MANAGE, Action.REQUEST_DECIDE,
         Action.ROSTER_VIEW, Action.ATTENDANCE_VIEW, Action.MEMBER_REVEAL,
         Action.MEMBER_REMOVE}


@given(actions, subjects, facts)
def test_decisions_are_total_and_pure(action, subject, f):
    first = decide(action, subject, f)
    assert first == decide(action, subject, f)
    assert first.allowed or (first.code and first.message)


@given(actions, facts)
def test_nobody_anonymous_may_do_anything(action, f):
    assert decide(action, Subject(None, None), f).code == "unauthenticated"


@given(actions, subjects, facts)
def test_staff_actions_need_an_active_facilitator_with_the_moderator_role_or_an_admin(
        action, subject, f):
    if action not in STAFF | FACILITATOR_ONLY or not decide(action, subject, f):
        return
    facilitator = (f.status == "active" and f.group_role in ("lead", "co")
                   and subject.role == Role.MODERATOR)
    assert facilitator or (subject.role == Role.ADMIN and action not in FACILITATOR_ONLY)


@given(actions, subjects, facts)
def test_outsiders_cannot_see_an_invite_only_group(action, subject, f):
    if f.listed or f.invited or f.status in ("requested", "active") or (
            subject.role == Role.ADMIN) or action in (Action.GROUP_CREATE,
                                                      Action.GROUP_LIST_ALL,
                                                      Action.REPORTS_ADMIN,
                                                      Action.ERASE_SELF):
        return
    assert not decide(action, subject, f)
    if subject.user_id is not None:
        assert decide(action, subject, f).code == "not_found"


@given(subjects, facts)
def test_meetings_need_membership_the_current_conduct_and_no_ban(subject, f):
    d = decide(Action.MEETING_ATTEND, subject, f)
    if not d:
        return
    assert f.status == "active" and f.exists and not f.archived
    if f.group_role == "member":
        assert f.conduct_current
    if f.group_role in ("lead", "co"):
        assert subject.role == Role.MODERATOR


@given(subjects, facts)
def test_facilitators_are_never_removed_by_anyone(subject, f):
    if f.target_group_role in ("lead", "co"):
        assert not decide(Action.MEMBER_REMOVE, subject, f)


@given(actions, subjects, facts)
def test_banned_people_only_read_a_listed_page_or_erase_their_data(action, subject, f):
    if f.status != "banned" or subject.role == Role.ADMIN:
        return
    if decide(action, subject, f):
        assert action == Action.ERASE_SELF or (action == Action.GROUP_VIEW and f.listed) or (
            action in (Action.GROUP_CREATE, Action.GROUP_LIST_ALL))


SAFETY_PRIVATE = {Action.SAFETY_VIEW, Action.SAFETY_HANDLE, Action.NOTES_READ,
                  Action.NOTES_WRITE, Action.CONCERN_FLAG}


def _facilitator(subject, f) -> bool:
    return (f.status == "active" and f.group_role in ("lead", "co")
            and subject.role == Role.MODERATOR)


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.sampled_from(sorted(SAFETY_PRIVATE)), subjects, facts)
def test_safety_records_and_notes_are_for_facilitators_and_the_admin_only(action, subject, f):
    if not decide(action, subject, f):
        return
    if action in (Action.NOTES_READ, Action.NOTES_WRITE, Action.CONCERN_FLAG):
        assert _facilitator(subject, f)  # never the admin: notes are the facilitators'
    else:
        assert _facilitator(subject, f) or subject.role == Role.ADMIN


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.sampled_from([Action.SAFETY_VIEW, Action.SAFETY_HANDLE]), subjects, facts)
def test_reports_about_a_facilitator_are_the_admins_alone(action, subject, f):
    if f.target_group_role in ("lead", "co") and decide(action, subject, f):
        assert subject.role == Role.ADMIN


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.sampled_from([Action.ALERT_SEND, Action.REPORT_FILE, Action.NOTES_CONSENT]),
       subjects, facts)
def test_alerts_reports_and_consent_need_an_active_membership(action, subject, f):
    if decide(action, subject, f):
        assert f.status == "active" and f.exists and not f.archived
        if action == Action.ALERT_SEND:
            assert f.group_role == "member"
