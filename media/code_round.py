"""The commit-then-reveal round behind the security code (docs/protocol.md).

Without it, a malicious server that substitutes identity keys could grind fake keys until
the short codes on both sides match (a birthday search over ~50 bits: seconds of work).
With it, every member first commits to a random 32-byte contribution and reveals it only
once it holds everyone's commitment; the code mixes in all contributions, so nobody, the
server included, can steer it. One round per membership epoch.

Pure state machine, no I/O; the browser's web/static/js/e2ee/code-round.js mirrors it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping

from media.e2ee import IdentityCard, b64u_decode, b64u_encode, commitment, security_code


class CodeRoundError(Exception):
    """A member revealed a contribution that does not match its commitment."""


class SecurityCodeRound:
    def __init__(
        self,
        room_id: str,
        epoch: int,
        own_participant_id: str,
        own_card: IdentityCard,
        members: Mapping[str, IdentityCard],
        *,
        random: Callable[[int], bytes] = os.urandom,
        digits: int = 15,
    ):
        self.room_id = room_id
        self.epoch = epoch
        self.own = own_participant_id
        self.cards = {own_participant_id: own_card, **members}
        self.digits = digits
        self._mine = random(32)
        self.commitments: dict[str, bytes] = {
            own_participant_id: commitment(room_id, own_card, self._mine)}
        self.contributions: dict[str, bytes] = {}
        self.revealed = False
        self.failed_by: str | None = None

    def commit_message(self) -> str:
        return b64u_encode(self.commitments[self.own])

    @property
    def ready_to_reveal(self) -> bool:
        return not self.revealed and set(self.commitments) >= set(self.cards)

    def reveal_message(self) -> str:
        """Our contribution; only once every member's commitment is in."""
        if not set(self.commitments) >= set(self.cards):
            raise CodeRoundError("cannot reveal before every commitment is in")
        self.revealed = True
        self.contributions[self.own] = self._mine
        return b64u_encode(self._mine)

    def on_commit(self, participant_id: str, value: str) -> None:
        if participant_id not in self.cards or participant_id == self.own:
            return
        if participant_id in self.commitments:
            return  # the first commitment counts
        self.commitments[participant_id] = b64u_decode(value, length=32, what="commitment")

    def on_reveal(self, participant_id: str, value: str) -> None:
        if participant_id not in self.cards or participant_id == self.own:
            return
        contribution = b64u_decode(value, length=32, what="contribution")
        expected = self.commitments.get(participant_id)
        if expected is None or not hmac.compare_digest(
                expected, commitment(self.room_id, self.cards[participant_id], contribution)):
            self.failed_by = participant_id
            raise CodeRoundError(f"{participant_id} revealed a value it had not committed to")
        self.contributions[participant_id] = contribution

    @property
    def code(self) -> str | None:
        """The security code, once every member has revealed (None until then)."""
        if self.failed_by is not None or set(self.contributions) < set(self.cards):
            return None
        return security_code(self.room_id, self.cards.values(), digits=self.digits,
                             contributions=self.contributions.values())
