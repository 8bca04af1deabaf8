"""Haven's signaling messages: one validated dataclass per message type.

Parsed once at the edge (``parse_client_message`` on the server, ``parse_server_message`` in
clients); everything inside works with typed values. Every message is a JSON object with a
``type``; docs/protocol.md describes each one. A message that fails validation raises
:class:`ProtocolError`, whose ``code`` goes back to the sender in an ``error`` message.

Leaf module: standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar
from urllib.parse import urlsplit

MAX_MESSAGE_BYTES = 64 * 1024
MAX_DEPTH = 16  # arrays/objects inside each other; real messages use at most 4
MAX_SDP_BYTES = 48 * 1024
MAX_KEYS_PER_MESSAGE = 16
MAX_BLOB_BYTES = 2048
PARTICIPANT_ID_RE = re.compile(r"^p-[0-9a-f]{6,32}$")
ROOM_ID_RE = re.compile(r"^r-[0-9a-f]{16}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
MAX_DISPLAY_NAME = 64
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _require(data: dict, name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in data:
        raise ProtocolError("invalid_message", f"'{name}' is required")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("invalid_message", f"'{name}' has the wrong type")
    return value


def _participant_id(value: object, name: str = "participant_id") -> str:
    if not isinstance(value, str) or not PARTICIPANT_ID_RE.fullmatch(value):
        raise ProtocolError("invalid_message", f"'{name}' is not a participant id")
    return value


def _blob(value: object) -> dict:
    """An opaque JSON object relayed between clients (wrapped keys): size-checked only."""
    if not isinstance(value, dict):
        raise ProtocolError("invalid_message", "'blob' must be an object")
    if len(json.dumps(value)) > MAX_BLOB_BYTES:
        raise ProtocolError("too_large", "'blob' is too large")
    return value


def _display_name(value: object) -> str:
    if not isinstance(value, str):
        raise ProtocolError("invalid_message", "'display_name' must be a string")
    name = " ".join(value.split())
    if not 1 <= len(name) <= MAX_DISPLAY_NAME or any(ord(c) < 32 for c in name):
        raise ProtocolError("invalid_message", "'display_name' must be 1 to 64 characters")
    return name


def _color(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not COLOR_RE.fullmatch(value):
        raise ProtocolError("invalid_message", "'color' must look like #a1b2c3")
    return value.lower()


@dataclass(frozen=True)
class Message:
    type: ClassVar[str] = ""

    def to_dict(self) -> dict:
        out = {"type": self.type}
        out.update(asdict(self))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


# --- client to server ----------------------------------------------------------------------

@dataclass(frozen=True)
class Join(Message):
    """First message on a connection: who I am, and the token that lets me in."""

    type: ClassVar[str] = "join"
    room_id: str
    token: str
    identity: dict  # an IdentityCard (media.e2ee), verified by the server and by every client
    display_name: str | None = None  # a pseudonym, where the room allows it
    color: str | None = None  # the avatar colour the person chose, "#rrggbb"
    # A reconnect after a network change by a client that still holds every media key, with
    # the last membership epoch it saw: if the server still has this participant (same
    # token, same identity) and nothing changed since, nobody else notices.
    resume_epoch: int | None = None

    @classmethod
    def parse(cls, d: dict) -> Join:
        room_id = _require(d, "room_id", str)
        if not ROOM_ID_RE.fullmatch(room_id):
            raise ProtocolError("invalid_message", "'room_id' is not a room id")
        token = _require(d, "token", str)
        if not TOKEN_RE.fullmatch(token):
            raise ProtocolError("invalid_token", "the join token is malformed")
        identity = _blob(_require(d, "identity", dict))
        name = d.get("display_name")
        resume = d.get("resume_epoch")
        if resume is not None:
            resume = _epoch({"epoch": resume})
        return cls(room_id, token, identity, None if name is None else _display_name(name),
                   _color(d.get("color")), resume)

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.resume_epoch is None:
            del out["resume_epoch"]
        return out


@dataclass(frozen=True)
class Offer(Message):
    type: ClassVar[str] = "offer"
    sdp: str

    @classmethod
    def parse(cls, d: dict) -> Offer:
        sdp = _require(d, "sdp", str)
        if len(sdp.encode()) > MAX_SDP_BYTES:
            raise ProtocolError("too_large", "the offer is too large")
        return cls(sdp)


@dataclass(frozen=True)
class KeyDelivery:
    to: str
    blob: dict


@dataclass(frozen=True)
class Keys(Message):
    """Wrapped sender keys, one per recipient; the server relays each blob unread."""

    type: ClassVar[str] = "keys"
    keys: tuple[KeyDelivery, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, d: dict) -> Keys:
        items = _require(d, "keys", list)
        if len(items) > MAX_KEYS_PER_MESSAGE:
            raise ProtocolError("too_large", "too many keys in one message")
        out = []
        for item in items:
            if not isinstance(item, dict):
                raise ProtocolError("invalid_message", "each key must be an object")
            out.append(KeyDelivery(_participant_id(item.get("to"), "to"), _blob(item.get("blob"))))
        return cls(tuple(out))

    def to_dict(self) -> dict:
        return {"type": self.type, "keys": [{"to": k.to, "blob": k.blob} for k in self.keys]}


@dataclass(frozen=True)
class Leave(Message):
    type: ClassVar[str] = "leave"

    @classmethod
    def parse(cls, d: dict) -> Leave:
        return cls()


@dataclass(frozen=True)
class Ping(Message):
    type: ClassVar[str] = "ping"

    @classmethod
    def parse(cls, d: dict) -> Ping:
        return cls()


@dataclass(frozen=True)
class Remove(Message):
    """Host only: remove a participant (their join link stops working)."""

    type: ClassVar[str] = "remove"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> Remove:
        return cls(_participant_id(d.get("participant_id")))


@dataclass(frozen=True)
class Mute(Message):
    """Host only: stop (or resume) forwarding a participant's voice, enforced by the SFU."""

    type: ClassVar[str] = "mute"
    participant_id: str
    muted: bool

    @classmethod
    def parse(cls, d: dict) -> Mute:
        return cls(_participant_id(d.get("participant_id")), _require(d, "muted", bool))


@dataclass(frozen=True)
class EndRoom(Message):
    """Host only: end the session for everyone."""

    type: ClassVar[str] = "end"

    @classmethod
    def parse(cls, d: dict) -> EndRoom:
        return cls()


B64U_32_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, base64url without padding


def _epoch(d: dict) -> int:
    epoch = _require(d, "epoch", int)
    if not 0 <= epoch < 2**53:
        raise ProtocolError("invalid_message", "'epoch' is out of range")
    return epoch


def _b64u_32(d: dict, name: str) -> str:
    value = _require(d, name, str)
    if not B64U_32_RE.fullmatch(value):
        raise ProtocolError("invalid_message", f"'{name}' must be 32 bytes of base64url")
    return value


@dataclass(frozen=True)
class CodeCommit(Message):
    """Security-code round, step 1: a commitment to this member's random contribution."""

    type: ClassVar[str] = "code_commit"
    epoch: int
    commitment: str

    @classmethod
    def parse(cls, d: dict) -> CodeCommit:
        return cls(_epoch(d), _b64u_32(d, "commitment"))


@dataclass(frozen=True)
class CodeReveal(Message):
    """Security-code round, step 2: the contribution, once every commitment is in."""

    type: ClassVar[str] = "code_reveal"
    epoch: int
    contribution: str

    @classmethod
    def parse(cls, d: dict) -> CodeReveal:
        return cls(_epoch(d), _b64u_32(d, "contribution"))


# --- group meetings: moderation (docs/protocol.md, "Moderated group meetings") -------------
# Accepted only in a group meeting's room; the hub checks the sender's role from the group's
# data (never from the message) and refuses with an `error` (fatal false) that changes nothing.

def _optional_participant(d: dict) -> str | None:
    value = d.get("participant_id")
    return None if value is None else _participant_id(value)


@dataclass(frozen=True)
class Hand(Message):
    """Raise or lower my own hand."""

    type: ClassVar[str] = "hand"
    raised: bool

    @classmethod
    def parse(cls, d: dict) -> Hand:
        return cls(_require(d, "raised", bool))


@dataclass(frozen=True)
class HandLower(Message):
    """Facilitator: lower one person's hand."""

    type: ClassVar[str] = "hand_lower"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> HandLower:
        return cls(_participant_id(d.get("participant_id")))


@dataclass(frozen=True)
class HandsLowerAll(Message):
    """Facilitator: lower every hand."""

    type: ClassVar[str] = "hands_lower_all"

    @classmethod
    def parse(cls, d: dict) -> HandsLowerAll:
        return cls()


@dataclass(frozen=True)
class HandFront(Message):
    """Facilitator: move one raised hand to the front of the queue."""

    type: ClassVar[str] = "hand_front"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> HandFront:
        return cls(_participant_id(d.get("participant_id")))


MAX_SHARE_SECONDS = 30 * 60


@dataclass(frozen=True)
class Piece(Message):
    """Facilitator: the talking piece on (optionally with a share timer) or off."""

    type: ClassVar[str] = "piece"
    on: bool
    share_seconds: int | None = None

    @classmethod
    def parse(cls, d: dict) -> Piece:
        share = d.get("share_seconds")
        if share is not None:
            if not isinstance(share, int) or isinstance(share, bool) or not (
                    30 <= share <= MAX_SHARE_SECONDS):
                raise ProtocolError("invalid_message",
                                    "'share_seconds' must be 30 to 1800 seconds")
        return cls(_require(d, "on", bool), share)


@dataclass(frozen=True)
class PiecePass(Message):
    """Facilitator: hand the piece to someone (no participant: the next raised hand)."""

    type: ClassVar[str] = "piece_pass"
    participant_id: str | None = None

    @classmethod
    def parse(cls, d: dict) -> PiecePass:
        return cls(_optional_participant(d))


@dataclass(frozen=True)
class PieceReturn(Message):
    """The holder (or a facilitator) gives the piece back to the facilitators."""

    type: ClassVar[str] = "piece_return"

    @classmethod
    def parse(cls, d: dict) -> PieceReturn:
        return cls()


@dataclass(frozen=True)
class MuteAll(Message):
    """Facilitator: mute every member (not the facilitators), enforced by the SFU."""

    type: ClassVar[str] = "mute_all"

    @classmethod
    def parse(cls, d: dict) -> MuteAll:
        return cls()


@dataclass(frozen=True)
class Allow(Message):
    """Facilitator: let one muted member speak again."""

    type: ClassVar[str] = "allow"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> Allow:
        return cls(_participant_id(d.get("participant_id")))


@dataclass(frozen=True)
class AskToSpeak(Message):
    """A member muted by a facilitator (or waiting for the piece) asks to speak: raises
    their hand, marked as asking."""

    type: ClassVar[str] = "ask_to_speak"

    @classmethod
    def parse(cls, d: dict) -> AskToSpeak:
        return cls()


@dataclass(frozen=True)
class SelfMute(Message):
    """Any room: I muted (or unmuted) my own microphone. Everyone sees it, and the SFU stops
    forwarding me while I am muted."""

    type: ClassVar[str] = "self_mute"
    muted: bool

    @classmethod
    def parse(cls, d: dict) -> SelfMute:
        return cls(_require(d, "muted", bool))


@dataclass(frozen=True)
class SendToLobby(Message):
    """Facilitator: send a member back to the lobby (not a ban: they can be let in again)."""

    type: ClassVar[str] = "send_to_lobby"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> SendToLobby:
        return cls(_participant_id(d.get("participant_id")))


BAN_SCOPES = ("meeting", "group")


@dataclass(frozen=True)
class Ban(Message):
    """Facilitator: remove a member and block every token of their membership, for this
    meeting or for the group."""

    type: ClassVar[str] = "ban"
    participant_id: str
    scope: str = "meeting"

    @classmethod
    def parse(cls, d: dict) -> Ban:
        scope = d.get("scope", "meeting")
        if scope not in BAN_SCOPES:
            raise ProtocolError("invalid_message", "'scope' must be 'meeting' or 'group'")
        return cls(_participant_id(d.get("participant_id")), scope)


@dataclass(frozen=True)
class Lock(Message):
    """Facilitator: lock (no one new comes in, even with a valid link) or unlock."""

    type: ClassVar[str] = "lock"
    locked: bool

    @classmethod
    def parse(cls, d: dict) -> Lock:
        return cls(_require(d, "locked", bool))


@dataclass(frozen=True)
class Pause(Message):
    """Facilitator: pause the meeting (every member is held at the SFU and the room shows a
    pause card; facilitators are still heard) or resume (mutes are as they were)."""

    type: ClassVar[str] = "pause"
    paused: bool

    @classmethod
    def parse(cls, d: dict) -> Pause:
        return cls(_require(d, "paused", bool))


# Messages only a group meeting's facilitator may send (the refusal test walks them all).
FACILITATOR_MESSAGES: tuple[type, ...] = (HandLower, HandsLowerAll, HandFront, Piece, PiecePass,
                                          MuteAll, Allow, SendToLobby, Ban, Lock, Pause)
MODERATION_MESSAGES: tuple[type, ...] = FACILITATOR_MESSAGES + (Hand, PieceReturn, AskToSpeak)


CLIENT_MESSAGES: dict[str, type] = {
    m.type: m
    for m in (Join, Offer, Keys, Leave, Ping, Remove, Mute, EndRoom, CodeCommit, CodeReveal,
              SelfMute) + MODERATION_MESSAGES
}


# --- server to client ----------------------------------------------------------------------

@dataclass(frozen=True)
class MemberInfo:
    participant_id: str
    sender_id: int
    display_name: str
    room_role: str
    identity: dict
    muted: bool = False
    color: str | None = None
    self_muted: bool = False  # their own microphone is off

    @classmethod
    def parse(cls, d: dict) -> MemberInfo:
        return cls(
            _participant_id(d.get("participant_id")),
            _require(d, "sender_id", int),
            _display_name(d.get("display_name")),
            _require(d, "room_role", str),
            _blob(d.get("identity")),
            bool(d.get("muted", False)),
            _color(d.get("color")),
            bool(d.get("self_muted", False)),
        )


MAX_ICE_SERVERS = 8
MAX_ICE_URLS = 8
ICE_URL_RE = re.compile(r"^(stun|turns?):[^\s]{1,300}$")


@dataclass(frozen=True)
class IceServer:
    """One STUN/TURN server entry, shaped like WebRTC's RTCIceServer. TURN entries carry a
    short-lived credential for this participant only (media/turn.py)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out: dict = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
            out["credential"] = self.credential
        return out

    @classmethod
    def parse(cls, d: dict) -> IceServer:
        if not isinstance(d, dict):
            raise ProtocolError("invalid_message", "each ICE server must be an object")
        urls = d.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if (not isinstance(urls, list) or not 1 <= len(urls) <= MAX_ICE_URLS
                or not all(isinstance(u, str) and ICE_URL_RE.fullmatch(u) for u in urls)):
            raise ProtocolError("invalid_message", "'urls' must list stun:/turn:/turns: URLs")
        username, credential = d.get("username"), d.get("credential")
        for name, value in (("username", username), ("credential", credential)):
            if value is not None and (not isinstance(value, str) or len(value) > 512):
                raise ProtocolError("invalid_message", f"'{name}' must be a short string")
        return cls(tuple(urls), username, credential)


@dataclass(frozen=True)
class Joined(Message):
    type: ClassVar[str] = "joined"
    room_id: str
    participant_id: str
    sender_id: int
    room_role: str
    display_name: str
    members: tuple[MemberInfo, ...]
    epoch: int = 0  # membership version; each change starts a new security-code round
    # STUN/TURN servers for this participant's peer connection (TURN with credentials that
    # expire); only ever sent to a connection whose join token was accepted.
    ice_servers: tuple[IceServer, ...] = ()
    resumed: bool = False  # a `resume` join took this participant's place silently

    def to_dict(self) -> dict:
        out = {"type": self.type}
        out.update(asdict(self))
        out["ice_servers"] = [s.to_dict() for s in self.ice_servers]
        return out

    @classmethod
    def parse(cls, d: dict) -> Joined:
        servers = d.get("ice_servers", [])
        if not isinstance(servers, list) or len(servers) > MAX_ICE_SERVERS:
            raise ProtocolError("invalid_message", "'ice_servers' must be a short list")
        resumed = d.get("resumed", False)
        if not isinstance(resumed, bool):
            raise ProtocolError("invalid_message", "'resumed' must be a boolean")
        return cls(
            _require(d, "room_id", str), _participant_id(d.get("participant_id")),
            _require(d, "sender_id", int), _require(d, "room_role", str),
            _display_name(d.get("display_name")),
            tuple(MemberInfo.parse(m) for m in _require(d, "members", list)),
            _require(d, "epoch", int),
            tuple(IceServer.parse(s) for s in servers),
            resumed,
        )


@dataclass(frozen=True)
class Answer(Message):
    type: ClassVar[str] = "answer"
    sdp: str

    @classmethod
    def parse(cls, d: dict) -> Answer:
        return cls(_require(d, "sdp", str))


@dataclass(frozen=True)
class SlotInfo:
    slot: int
    mid: str
    participant_id: str | None


@dataclass(frozen=True)
class Slots(Message):
    """Which member's voice arrives on which of my receive transceivers (by mid)."""

    type: ClassVar[str] = "slots"
    slots: tuple[SlotInfo, ...]

    @classmethod
    def parse(cls, d: dict) -> Slots:
        out = []
        for s in _require(d, "slots", list):
            pid = s.get("participant_id")
            out.append(SlotInfo(int(s["slot"]), str(s["mid"]),
                                None if pid is None else _participant_id(pid)))
        return cls(tuple(out))


@dataclass(frozen=True)
class MemberJoined(Message):
    type: ClassVar[str] = "member_joined"
    member: MemberInfo
    epoch: int = 0

    @classmethod
    def parse(cls, d: dict) -> MemberJoined:
        return cls(MemberInfo.parse(_require(d, "member", dict)), _require(d, "epoch", int))


@dataclass(frozen=True)
class MemberLeft(Message):
    type: ClassVar[str] = "member_left"
    participant_id: str
    reason: str  # left | removed | disconnected | replaced | room_closed
    epoch: int = 0

    @classmethod
    def parse(cls, d: dict) -> MemberLeft:
        return cls(_participant_id(d.get("participant_id")), _require(d, "reason", str),
                   _require(d, "epoch", int))


@dataclass(frozen=True)
class KeyFrom(Message):
    type: ClassVar[str] = "key"
    sender: str  # JSON field "from"
    blob: dict

    def to_dict(self) -> dict:
        return {"type": self.type, "from": self.sender, "blob": self.blob}

    @classmethod
    def parse(cls, d: dict) -> KeyFrom:
        return cls(_participant_id(d.get("from"), "from"), _blob(d.get("blob")))


@dataclass(frozen=True)
class Muted(Message):
    type: ClassVar[str] = "muted"
    participant_id: str
    muted: bool

    @classmethod
    def parse(cls, d: dict) -> Muted:
        return cls(_participant_id(d.get("participant_id")), _require(d, "muted", bool))


@dataclass(frozen=True)
class Pong(Message):
    type: ClassVar[str] = "pong"

    @classmethod
    def parse(cls, d: dict) -> Pong:
        return cls()


@dataclass(frozen=True)
class Ended(Message):
    """The session is over for this connection (room ended, or I was removed)."""

    type: ClassVar[str] = "ended"
    reason: str  # room_closed | removed | replaced | sent_to_lobby | banned | no_facilitator

    @classmethod
    def parse(cls, d: dict) -> Ended:
        return cls(_require(d, "reason", str))


@dataclass(frozen=True)
class Error(Message):
    type: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = True

    @classmethod
    def parse(cls, d: dict) -> Error:
        return cls(str(d.get("code", "error")), str(d.get("message", "")), bool(d.get("fatal", True)))


@dataclass(frozen=True)
class CodeCommitFrom(Message):
    type: ClassVar[str] = "code_commit"
    sender: str  # JSON field "from"
    epoch: int
    commitment: str

    def to_dict(self) -> dict:
        return {"type": self.type, "from": self.sender, "epoch": self.epoch,
                "commitment": self.commitment}

    @classmethod
    def parse(cls, d: dict) -> CodeCommitFrom:
        return cls(_participant_id(d.get("from"), "from"), _epoch(d), _b64u_32(d, "commitment"))


@dataclass(frozen=True)
class CodeRevealFrom(Message):
    type: ClassVar[str] = "code_reveal"
    sender: str  # JSON field "from"
    epoch: int
    contribution: str

    def to_dict(self) -> dict:
        return {"type": self.type, "from": self.sender, "epoch": self.epoch,
                "contribution": self.contribution}

    @classmethod
    def parse(cls, d: dict) -> CodeRevealFrom:
        return cls(_participant_id(d.get("from"), "from"), _epoch(d),
                   _b64u_32(d, "contribution"))


@dataclass(frozen=True)
class SelfMuted(Message):
    """Someone muted or unmuted their own microphone (every room)."""

    type: ClassVar[str] = "self_mute"
    participant_id: str
    muted: bool

    @classmethod
    def parse(cls, d: dict) -> SelfMuted:
        return cls(_participant_id(d.get("participant_id")), _require(d, "muted", bool))


@dataclass(frozen=True)
class ModerationEvent:
    kind: str
    by: str | None = None
    participant_id: str | None = None


@dataclass(frozen=True)
class Moderation(Message):
    """A group meeting's moderation state, sent to everyone after each change (and on
    join): the hand queue, the talking piece, mutes, the lock; ``event`` says what changed."""

    type: ClassVar[str] = "moderation"
    state: dict
    event: ModerationEvent | None = None

    @classmethod
    def parse(cls, d: dict) -> Moderation:
        state = _require(d, "state", dict)
        for name in ("queue", "muted", "self_muted", "facilitators"):
            if not isinstance(state.get(name), list):
                raise ProtocolError("invalid_message", f"'state.{name}' must be a list")
        event = d.get("event")
        if event is not None:
            if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
                raise ProtocolError("invalid_message", "'event' must name its kind")
            event = ModerationEvent(event["kind"], event.get("by"), event.get("participant_id"))
        return cls(state, event)


@dataclass(frozen=True)
class Notice(Message):
    """Something everyone in a meeting should know (e.g. ``no_facilitator``: no facilitator
    is present, and the meeting ends in ``seconds`` unless one comes back)."""

    type: ClassVar[str] = "notice"
    code: str
    message: str
    seconds: float | None = None

    @classmethod
    def parse(cls, d: dict) -> Notice:
        return cls(_require(d, "code", str), _require(d, "message", str), d.get("seconds"))


SERVER_MESSAGES: dict[str, type] = {
    m.type: m
    for m in (Joined, Answer, Slots, MemberJoined, MemberLeft, KeyFrom, Muted, Pong, Ended, Error,
              CodeCommitFrom, CodeRevealFrom, SelfMuted, Moderation, Notice)
}


# --- safety in the room ----------------------------------------------------------------
# "Let the facilitator know I'm struggling" from the room's Get help now dialog, a
# facilitator's concern about a member, and the notes indicator (docs/protocol.md, "Safety in
# the room"). A too-long message is refused by the hub (a non-fatal `message_too_long`), not
# here: a person in distress must not lose their connection over a long message.

ALERT_MESSAGE_MAX = 500  # characters of the optional short message
NOTES_STATES = ("on", "off", "paused")
ALERT_KINDS = ("alert", "concern")


def _optional_text(d: dict, name: str) -> str | None:
    value = d.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("invalid_message", f"'{name}' must be text or null")
    return value


@dataclass(frozen=True)
class HelpAlert(Message):
    """Group meeting member, or patient in a 1:1 session: privately tell the facilitators
    (the therapist) that I am struggling, with an optional short message."""

    type: ClassVar[str] = "help_alert"
    message: str | None = None

    @classmethod
    def parse(cls, d: dict) -> HelpAlert:
        return cls(_optional_text(d, "message"))


@dataclass(frozen=True)
class ConcernFlag(Message):
    """Facilitator: flag concern about a member present (private to the facilitators)."""

    type: ClassVar[str] = "concern_flag"
    participant_id: str
    note: str | None = None

    @classmethod
    def parse(cls, d: dict) -> ConcernFlag:
        return cls(_participant_id(d.get("participant_id")), _optional_text(d, "note"))


@dataclass(frozen=True)
class HelpAlertSent(Message):
    """To the sender only: the alert is stored; ``told`` is ``facilitators`` / ``therapist``
    (someone present was told now) or ``later`` (nobody is here: it waits on the group page
    or the therapist's alerts)."""

    type: ClassVar[str] = "help_alert_sent"
    alert_id: int
    created_at: str
    told: str
    message: str

    @classmethod
    def parse(cls, d: dict) -> HelpAlertSent:
        return cls(_require(d, "alert_id", int), _require(d, "created_at", str),
                   _require(d, "told", str), _require(d, "message", str))


@dataclass(frozen=True)
class SafetyAlert(Message):
    """To the facilitators present (or the therapist) only: a member's alert or a concern.
    ``participant_id`` is null when the member is no longer in the room; ``message`` is null
    for an alert delivered on joining (read it on the group's safety page)."""

    type: ClassVar[str] = "safety_alert"
    alert_id: int
    kind: str
    pseudonym: str
    created_at: str
    participant_id: str | None = None
    message: str | None = None
    group_id: int | None = None  # null in a 1:1 session
    raised_by: str | None = None  # a concern: the facilitator who flagged it
    live: bool = True  # false: an open alert from earlier in the meeting, sent on joining

    @classmethod
    def parse(cls, d: dict) -> SafetyAlert:
        kind = _require(d, "kind", str)
        if kind not in ALERT_KINDS:
            raise ProtocolError("invalid_message", "'kind' must be alert or concern")
        pid = d.get("participant_id")
        gid = d.get("group_id")
        if gid is not None and (not isinstance(gid, int) or isinstance(gid, bool)):
            raise ProtocolError("invalid_message", "'group_id' must be an integer")
        return cls(_require(d, "alert_id", int), kind, _require(d, "pseudonym", str),
                   _require(d, "created_at", str),
                   None if pid is None else _participant_id(pid), _optional_text(d, "message"),
                   gid, _optional_text(d, "raised_by"), bool(d.get("live", True)))


@dataclass(frozen=True)
class NotesState(Message):
    """To everyone in a group meeting, on joining and whenever it changes: whether notes are
    being taken (``on``), not (``off``), or paused because someone present has not consented
    (``paused``). Only the state: never note text, never who lacks consent."""

    type: ClassVar[str] = "notes_state"
    state: str

    @classmethod
    def parse(cls, d: dict) -> NotesState:
        state = _require(d, "state", str)
        if state not in NOTES_STATES:
            raise ProtocolError("invalid_message", "'state' must be on, off or paused")
        return cls(state)


SAFETY_CLIENT_MESSAGES: tuple[type, ...] = (HelpAlert, ConcernFlag)
CLIENT_MESSAGES.update({m.type: m for m in SAFETY_CLIENT_MESSAGES})
SERVER_MESSAGES.update({m.type: m for m in (HelpAlertSent, SafetyAlert, NotesState)})


def exceeds_depth(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests more than ``limit`` arrays/objects deep (checked without
    recursion, so no input can exhaust the stack here or in later code)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _decode(raw: str | bytes, table: dict[str, type]) -> Message:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"messages must be under {MAX_MESSAGE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("malformed", "the message is not JSON") from None
    except RecursionError:  # "[[[[…" nested past the interpreter's limit
        raise ProtocolError("malformed", "the message nests too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "a message must be a JSON object")
    if exceeds_depth(data, MAX_DEPTH):
        raise ProtocolError("malformed", "the message nests too deeply")
    kind = data.get("type")
    cls = table.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {str(kind)[:32]!r}")
    try:
        return cls.parse(data)
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProtocolError("invalid_message", f"malformed '{kind}' message") from None


def parse_client_message(raw: str | bytes) -> Message:
    return _decode(raw, CLIENT_MESSAGES)


def parse_server_message(raw: str | bytes) -> Message:
    return _decode(raw, SERVER_MESSAGES)


def message_fields(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


# --- side room (issue 13; docs/protocol.md, "Side rooms") ----------------------------------
# A facilitator takes one member aside into a private side room of the same meeting: the SFU
# forwards nothing between it and the group, and the two sides re-key to each other only.
# Group meetings only; every refusal is an `error` (fatal false) that changes nothing.

@dataclass(frozen=True)
class SideRoomInvite(Message):
    """Facilitator: invite one member present in the group into a side room with me."""

    type: ClassVar[str] = "side_room_invite"
    participant_id: str

    @classmethod
    def parse(cls, d: dict) -> SideRoomInvite:
        return cls(_participant_id(d.get("participant_id")))


@dataclass(frozen=True)
class SideRoomAccept(Message):
    """The invited member: yes, I'll step out into the side room."""

    type: ClassVar[str] = "side_room_accept"

    @classmethod
    def parse(cls, d: dict) -> SideRoomAccept:
        return cls()


@dataclass(frozen=True)
class SideRoomDecline(Message):
    """The invited member: no, thank you (I stay with the group)."""

    type: ClassVar[str] = "side_room_decline"

    @classmethod
    def parse(cls, d: dict) -> SideRoomDecline:
        return cls()


@dataclass(frozen=True)
class SideRoomReturn(Message):
    """Either side: back to the group (ends the side room); the facilitator's withdraws an
    invitation not yet answered."""

    type: ClassVar[str] = "side_room_return"

    @classmethod
    def parse(cls, d: dict) -> SideRoomReturn:
        return cls()


SIDE_ROOM_STATUSES = ("invited", "opened", "declined", "withdrawn", "returned")


@dataclass(frozen=True)
class SideRoom(Message):
    """To the two sides of one side room only (the group sees just who is stepped out, in
    the ``moderation`` state): what happened to it, and who did it."""

    type: ClassVar[str] = "side_room"
    status: str  # invited | opened | declined | withdrawn | returned
    facilitator: str  # participant ids of the two sides
    member: str
    by: str
    facilitator_name: str = ""  # display names, for the prompt and the side-room panel
    member_name: str = ""

    @classmethod
    def parse(cls, d: dict) -> SideRoom:
        status = _require(d, "status", str)
        if status not in SIDE_ROOM_STATUSES:
            raise ProtocolError("invalid_message", "'status' is not a side-room status")
        names = [d.get(k, "") for k in ("facilitator_name", "member_name")]
        if not all(isinstance(n, str) and len(n) <= MAX_DISPLAY_NAME for n in names):
            raise ProtocolError("invalid_message", "a side-room name is not a display name")
        return cls(status, _participant_id(d.get("facilitator"), "facilitator"),
                   _participant_id(d.get("member"), "member"), _participant_id(d.get("by"), "by"),
                   *names)


SIDE_ROOM_MESSAGES: tuple[type, ...] = (SideRoomInvite, SideRoomAccept, SideRoomDecline,
                                        SideRoomReturn)
CLIENT_MESSAGES.update({m.type: m for m in SIDE_ROOM_MESSAGES})
SERVER_MESSAGES[SideRoom.type] = SideRoom


# --- join URLs ----------------------------------------------------------------------------

@dataclass(frozen=True)
class JoinUrl:
    """``{base_url}/s/{room_id}#{token}``: the token sits in the fragment, which browsers never
    send to the server (so it is in no access log or Referer)."""

    base_url: str
    room_id: str
    token: str

    @property
    def signaling_url(self) -> str:
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        return scheme + self.base_url[self.base_url.index(":"):] + "/ws/signal"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def parse_join_url(url: str) -> JoinUrl:
    parts = urlsplit(url.strip())
    m = re.fullmatch(r"/s/(r-[0-9a-f]{16})", parts.path)
    if parts.scheme not in ("http", "https") or not parts.netloc or not m:
        raise ProtocolError("invalid_join_url", "a join URL looks like https://host/s/r-...#token")
    if not TOKEN_RE.fullmatch(parts.fragment):
        raise ProtocolError("invalid_join_url", "the join URL has no valid token after '#'")
    return JoinUrl(f"{parts.scheme}://{parts.netloc}", m.group(1), parts.fragment)
