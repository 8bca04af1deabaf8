"""The commit-then-reveal round for the security code."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.code_round import CodeRoundError, SecurityCodeRound
from media.e2ee import IdentityKeys, b64u_encode, security_code

ROOM = "r-00112233445566ff"


def make_rounds(n: int, epoch: int = 1):
    keys = [IdentityKeys.generate() for _ in range(n)]
    pids = [f"p-{i:012x}" for i in range(n)]
    cards = {pid: k.card() for pid, k in zip(pids, keys, strict=True)}
    rounds = {
        pid: SecurityCodeRound(ROOM, epoch, pid, cards[pid],
                               {o: c for o, c in cards.items() if o != pid})
        for pid in pids
    }
    return pids, cards, rounds


def run(rounds):
    commits = {pid: r.commit_message() for pid, r in rounds.items()}
    for r in rounds.values():
        assert not r.ready_to_reveal or len(rounds) == 1
        for other, c in commits.items():
            r.on_commit(other, c)
    reveals = {pid: r.reveal_message() for pid, r in rounds.items()}
    for r in rounds.values():
        for other, v in reveals.items():
            r.on_reveal(other, v)
    return {r.code for r in rounds.values()}


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=6))
def test_everyone_ends_with_the_same_code(n):
    _, cards, rounds = make_rounds(n)
    codes = run(rounds)
    assert len(codes) == 1 and None not in codes
    # and it is not the code without contributions: the random values are mixed in
    assert codes != {security_code(ROOM, cards.values())}


def test_no_code_and_no_reveal_before_every_commitment():
    pids, _, rounds = make_rounds(3)
    a = rounds[pids[0]]
    a.on_commit(pids[1], rounds[pids[1]].commit_message())
    assert not a.ready_to_reveal and a.code is None
    with pytest.raises(CodeRoundError):
        a.reveal_message()
    a.on_commit(pids[2], rounds[pids[2]].commit_message())
    assert a.ready_to_reveal


def test_a_reveal_that_does_not_match_its_commitment_fails_the_check():
    pids, _, rounds = make_rounds(2)
    a, b = rounds[pids[0]], rounds[pids[1]]
    a.on_commit(pids[1], b.commit_message())
    b.on_commit(pids[0], a.commit_message())
    a.reveal_message()
    with pytest.raises(CodeRoundError):
        a.on_reveal(pids[1], b64u_encode(b"\x07" * 32))  # not what b committed to
    assert a.code is None and a.failed_by == pids[1]


def test_a_substituted_card_cannot_match_the_real_code():
    """A server showing b a fake card for a gets a different code on each side."""
    pids, cards, _ = make_rounds(2)
    fake_a = IdentityKeys.generate().card()
    a = SecurityCodeRound(ROOM, 1, pids[0], cards[pids[0]], {pids[1]: cards[pids[1]]})
    b = SecurityCodeRound(ROOM, 1, pids[1], cards[pids[1]], {pids[0]: fake_a})
    # The server relays a's real commitment to b: it cannot open it under the fake card.
    b.on_commit(pids[0], a.commit_message())
    a.on_commit(pids[1], b.commit_message())
    b_reveal = b.reveal_message()
    a_reveal = a.reveal_message()
    a.on_reveal(pids[1], b_reveal)
    with pytest.raises(CodeRoundError):
        b.on_reveal(pids[0], a_reveal)


def test_commitments_from_strangers_and_duplicates_are_ignored():
    pids, _, rounds = make_rounds(2)
    a = rounds[pids[0]]
    a.on_commit("p-ffffffffffff", rounds[pids[1]].commit_message())
    assert "p-ffffffffffff" not in a.commitments
    first = rounds[pids[1]].commit_message()
    a.on_commit(pids[1], first)
    a.on_commit(pids[1], b64u_encode(b"\x01" * 32))
    assert b64u_encode(a.commitments[pids[1]]) == first
