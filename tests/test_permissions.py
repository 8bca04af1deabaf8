"""The permission matrix (therapy.permissions) as properties over role x action x ownership,
and a sample of the same rules enforced by the storage layer on a real database."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from therapy import accounts, care, consent, notes, schema
from therapy.accounts import Role, ScryptCost
from therapy.audit import Actor
from therapy.datadir import prepare
from therapy.permissions import Action, Denied, Facts, NoteKind, Subject, decide
from therapy.storage import open_database

NOTE_KINDS = [None, NoteKind.PROGRESS, NoteKind.PSYCHOTHERAPY]

facts_st = st.builds(
    Facts,
    is_self=st.booleans(), care_team=st.booleans(), is_author=st.booleans(),
    note_kind=st.sampled_from(NOTE_KINDS), note_signed=st.booleans(),
    note_shared=st.booleans(), notes_consent=st.booleans(), erased=st.booleans(),
)
subject_st = st.builds(Subject, user_id=st.integers(1, 50), role=st.sampled_from(list(Role)))


def intended(action: Action, role: Role, f: Facts) -> bool:
    """The rules as the issue states them, written out independently of the module."""
    T, P, A = role == Role.THERAPIST, role == Role.PATIENT, role == Role.ADMIN
    progress = f.note_kind == NoteKind.PROGRESS
    table = {
        Action.NOTE_CREATE: T and f.care_team and f.notes_consent and not f.erased,
        Action.NOTE_READ: not f.erased and (
            (T and f.is_author)
            or (T and f.care_team and progress and f.note_signed)
            or (P and f.is_self and progress and f.note_signed and f.note_shared)),
        Action.NOTE_EDIT: T and f.is_author and not f.note_signed and not f.erased,
        Action.NOTE_SIGN: T and f.is_author and not f.note_signed and not f.erased,
        Action.NOTE_ADDENDUM: T and f.is_author and f.note_signed and not f.erased,
        Action.NOTE_LIST: (T and f.care_team) or (P and f.is_self),
        Action.RECORD_EXPORT: P and f.is_self,
        Action.AUDIT_READ: A or (T and f.care_team),
        Action.PATIENT_SHRED: A,
        Action.PATIENT_VIEW: T and f.care_team,
        Action.INVITE_CREATE: T,
        Action.APPOINTMENT_MANAGE: T and f.care_team,
        Action.APPOINTMENT_VIEW: (T and f.is_author) or (P and f.is_self),
        Action.ENVIRONMENT_CHOOSE: P and f.is_self,
        Action.CHECK_IN: P and f.is_self,
        Action.ADMIT: T and f.is_author,
        Action.CONSENT_SIGN: P and f.is_self,
        Action.CONSENT_VIEW: (P and f.is_self) or (T and f.care_team) or A,
        Action.CARE_ALERT_SEND: P and f.is_self,
        Action.CARE_ALERT_VIEW: T and f.care_team,
    }
    return table[action]


@given(action=st.sampled_from(list(Action)), subject=subject_st, facts=facts_st)
def test_matrix_matches_the_intended_rules(action, subject, facts):
    decision = decide(action, subject, facts)
    assert decision.allowed == intended(action, subject.role, facts)
    if not decision.allowed:
        assert decision.code in {"forbidden", "locked", "not_signed", "consent_required",
                                 "erased"}
        assert decision.message


def test_every_action_role_and_ownership_combination():
    """Exhaustive over the whole (small) space, so nothing rests on sampling luck."""
    count = 0
    for action, role, kind, *flags in itertools.product(
            list(Action), list(Role), NOTE_KINDS, *([[False, True]] * 7)):
        f = Facts(*flags[:3], note_kind=kind, note_signed=flags[3], note_shared=flags[4],
                  notes_consent=flags[5], erased=flags[6])
        assert decide(action, Subject(1, role), f).allowed == intended(action, role, f)
        count += 1
    assert count == len(Action) * len(Role) * 3 * 2**7


@given(subject=subject_st, facts=facts_st)
def test_a_therapist_never_reads_another_therapists_patients_notes(subject, facts):
    outsider = Facts(**{**facts.__dict__, "is_author": False, "care_team": False,
                        "is_self": False})
    therapist = Subject(subject.user_id, Role.THERAPIST)
    for action in (Action.NOTE_READ, Action.NOTE_LIST, Action.NOTE_EDIT, Action.NOTE_ADDENDUM,
                   Action.NOTE_CREATE, Action.AUDIT_READ, Action.PATIENT_VIEW):
        assert not decide(action, therapist, outsider).allowed


@given(subject=subject_st, facts=facts_st)
def test_a_patient_never_reads_psychotherapy_notes(subject, facts):
    psych = Facts(**{**facts.__dict__, "note_kind": NoteKind.PSYCHOTHERAPY})
    assert not decide(Action.NOTE_READ, Subject(subject.user_id, Role.PATIENT), psych).allowed


@given(subject=subject_st, facts=facts_st)
def test_a_locked_note_cannot_be_edited_or_resigned_by_anyone(subject, facts):
    locked = Facts(**{**facts.__dict__, "note_signed": True})
    for action in (Action.NOTE_EDIT, Action.NOTE_SIGN):
        decision = decide(action, subject, locked)
        assert not decision.allowed and decision.code == "locked"


@given(subject=subject_st, facts=facts_st)
def test_admins_and_moderators_never_read_note_text(subject, facts):
    for role in (Role.ADMIN, Role.MODERATOR):
        assert not decide(Action.NOTE_READ, Subject(subject.user_id, role), facts).allowed


@given(facts=facts_st)
def test_no_new_note_without_consent(facts):
    no_consent = Facts(**{**facts.__dict__, "notes_consent": False, "care_team": True,
                          "erased": False})
    decision = decide(Action.NOTE_CREATE, Subject(1, Role.THERAPIST), no_consent)
    assert not decision.allowed and decision.code == "consent_required"


# --- the storage layer applies the same rules ----------------------------------------------

COST = ScryptCost(n=2**4, r=1, p=1)


@pytest.fixture
def world(tmp_path):
    data = prepare(tmp_path / "data", [schema.migrations])
    db = open_database(data.db_path)
    mk = lambda name, role: accounts.create_user(  # noqa: E731
        db, name, "correct horse battery", role, cost=COST)
    people = {
        "t1": mk("therapist1", Role.THERAPIST), "t2": mk("therapist2", Role.THERAPIST),
        "p1": mk("patient1", Role.PATIENT), "p2": mk("patient2", Role.PATIENT),
        "admin": mk("admin", Role.ADMIN), "mod": mk("moderator", Role.MODERATOR),
    }
    care.link(db, people["t1"].id, people["p1"].id, actor=Actor.system())
    care.link(db, people["t2"].id, people["p2"].id, actor=Actor.system())
    for p in ("p1", "p2"):
        for doc in consent.current_documents():
            consent.sign(db, people[p], doc.id, doc.version, doc.sha256, "Some Body",
                         actor=Actor(people[p].id))
    made = {}
    for kind, shared, sign in [("progress", True, True), ("progress", False, True),
                               ("progress", True, False), ("psychotherapy", False, True)]:
        m = notes.create_note(db, data.keyring, people["t1"], people["p1"].id, kind=kind,
                              template="dap", sections={"data": f"{kind} {shared} {sign}"},
                              shared_with_patient=shared, actor=Actor(people["t1"].id))
        if sign:
            notes.sign_note(db, people["t1"], m.id, actor=Actor(people["t1"].id))
        made[(kind, shared, sign)] = m.id
    yield data, db, people, made
    db.close()


def can_read(data, db, user, note_id) -> bool:
    try:
        notes.read_note(db, data.keyring, user, note_id, actor=Actor(user.id))
        return True
    except Denied:
        return False


def test_storage_layer_read_matrix(world):
    data, db, people, made = world
    expected = {
        # who:  (progress shared signed, progress unshared signed, progress draft, psych)
        "t1": (True, True, True, True),
        "t2": (False, False, False, False),
        "p1": (True, False, False, False),
        "p2": (False, False, False, False),
        "admin": (False, False, False, False),
        "mod": (False, False, False, False),
    }
    keys = [("progress", True, True), ("progress", False, True), ("progress", True, False),
            ("psychotherapy", False, True)]
    for who, row in expected.items():
        got = tuple(can_read(data, db, people[who], made[k]) for k in keys)
        assert got == row, who
    denied = list(db.query("SELECT * FROM audit_log WHERE action = 'note.read_denied'"))
    assert len(denied) == sum(row.count(False) for row in expected.values())


def test_second_therapist_of_same_patient_reads_signed_progress_only(world):
    data, db, people, made = world
    care.link(db, people["t2"].id, people["p1"].id, actor=Actor.system())
    assert can_read(data, db, people["t2"], made[("progress", False, True)])
    assert not can_read(data, db, people["t2"], made[("progress", True, False)])  # a draft
    assert not can_read(data, db, people["t2"], made[("psychotherapy", False, True)])


def test_storage_layer_refuses_edits_of_locked_notes_and_by_others(world):
    data, db, people, made = world
    signed = made[("progress", True, True)]
    draft = made[("progress", True, False)]
    for who in people:
        with pytest.raises(Denied) as exc:
            notes.update_note(db, data.keyring, people[who], signed,
                              sections={"data": "changed"}, actor=Actor(people[who].id))
        assert exc.value.code in ("locked",)
    for who in ("t2", "p1", "admin", "mod"):
        with pytest.raises(Denied):
            notes.update_note(db, data.keyring, people[who], draft, sections={"data": "x"},
                              actor=Actor(people[who].id))
    # And the database itself refuses, even bypassing the application.
    with pytest.raises(Exception, match="locked"):
        db.execute("UPDATE notes SET shared_with_patient = 0 WHERE id = ?", [signed])
    with pytest.raises(Exception, match="locked"):
        db.execute("DELETE FROM notes WHERE id = ?", [signed])
