"""STUN/TURN server URLs and short-lived TURN credentials (the TURN REST API scheme).

Haven hands each participant whose join token was accepted the ICE servers it should use.
TURN needs credentials; Haven never stores per-user TURN passwords. It shares one secret
with the TURN server (coturn: ``use-auth-secret`` + ``static-auth-secret=SECRET``) and
derives, per participant, a credential that expires on its own
(draft-uberti-behave-turn-rest-00, as coturn implements it):

    username   = "<unix expiry time>:<participant id>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the HMAC from the username and refuses it after the expiry time.
A credential is valid for ``ttl`` seconds (default 1 hour); a reconnect gets a fresh one.
Neither the secret nor a credential is ever logged (``repr`` hides them).

URLs (RFC 7064 / RFC 7065): ``stun:host[:port]``, ``turn:host[:port][?transport=udp|tcp]``,
``turns:host[:port][?transport=tcp]``. Host is a DNS name or an IPv4 address, or an IPv6
address in brackets.

Standard library only (and media.signaling's message types).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass, field

from .signaling import IceServer

DEFAULT_TTL_S = 3600
MAX_TTL_S = 7 * 24 * 3600
MIN_TTL_S = 60
MAX_SERVERS = 8

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_URL = re.compile(r"^(?P<scheme>stun|turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[^:?\[\]/@]+)"
                  r"(?::(?P<port>\d{1,5}))?(?:\?transport=(?P<transport>[a-z]+))?$")
DEFAULT_PORTS = {"stun": 3478, "turn": 3478, "turns": 5349}


class IceUrlError(ValueError):
    """A STUN/TURN URL Haven cannot use; the message is one line for the user."""


@dataclass(frozen=True)
class IceUrl:
    scheme: str  # stun | turn | turns
    host: str  # without brackets
    port: int
    transport: str  # udp | tcp

    @property
    def is_turn(self) -> bool:
        return self.scheme != "stun"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{host}:{self.port}"
        if self.scheme == "turn" and self.transport == "tcp":
            text += "?transport=tcp"
        elif self.scheme == "turns":
            text += "?transport=tcp"
        return text


def parse_ice_url(text: str) -> IceUrl:
    """Parse and check one ``--ice-server`` URL (raises IceUrlError with a clear reason)."""
    if not isinstance(text, str) or len(text) > 300:
        raise IceUrlError("an ICE server URL must be a short string")
    m = _URL.fullmatch(text.strip())
    if not m:
        raise IceUrlError(f"not a stun:, turn: or turns: URL: {text[:80]!r} "
                          "(e.g. turn:turn.example.org:3478?transport=tcp)")
    scheme, host = m.group("scheme"), m.group("host")
    if host.startswith("["):
        host = host[1:-1]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise IceUrlError(f"not an IPv6 address in brackets: {host!r}") from None
    elif not _HOSTNAME.fullmatch(host):
        raise IceUrlError(f"not a host name or address: {host[:80]!r}")
    port = int(m.group("port") or DEFAULT_PORTS[scheme])
    if not 1 <= port <= 65535:
        raise IceUrlError(f"port {port} is out of range")
    transport = m.group("transport")
    if scheme == "stun":
        if transport is not None:
            raise IceUrlError("stun: URLs take no ?transport= (STUN is UDP)")
        transport = "udp"
    elif scheme == "turn":
        transport = transport or "udp"
        if transport not in ("udp", "tcp"):
            raise IceUrlError(f"turn: transport must be udp or tcp, not {transport!r}")
    else:
        transport = transport or "tcp"
        if transport != "tcp":
            raise IceUrlError("turns: (TURN over TLS) runs over tcp only")
    return IceUrl(scheme, host.lower(), port, transport)


def turn_credentials(secret: str, user: str, *, ttl: int = DEFAULT_TTL_S,
                     now: float | None = None) -> tuple[str, str, int]:
    """(username, credential, expires_at) for ``user`` under the shared ``secret``."""
    if not secret:
        raise ValueError("a TURN secret is required")
    if ":" in user:
        raise ValueError("the user id may not contain ':'")
    expires = int(now if now is not None else time.time()) + int(ttl)
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii"), expires


def check_turn_credential(secret: str, username: str, credential: str, *,
                          now: float | None = None) -> bool:
    """What a TURN server with ``use-auth-secret`` checks (used by tests and diagnostics)."""
    expires, sep, _ = username.partition(":")
    if not sep or not expires.isdigit():
        return False
    if int(expires) < int(now if now is not None else time.time()):
        return False
    expected = base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode("ascii")
    return hmac.compare_digest(expected, credential)


@dataclass(frozen=True)
class IceServers:
    """The deployment's STUN/TURN servers and the TURN secret (``haven serve`` flags)."""

    urls: tuple[IceUrl, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    ttl: int = DEFAULT_TTL_S

    def __post_init__(self) -> None:
        if len(self.urls) > MAX_SERVERS:
            raise IceUrlError(f"at most {MAX_SERVERS} ICE servers")
        if not MIN_TTL_S <= self.ttl <= MAX_TTL_S:
            raise IceUrlError(f"the TURN credential lifetime must be {MIN_TTL_S} s to "
                              f"{MAX_TTL_S // 86400} days")
        if any(u.is_turn for u in self.urls) and not self.turn_secret:
            raise IceUrlError("turn: and turns: servers need --turn-secret (the secret shared "
                              "with the TURN server's use-auth-secret)")
        if self.turn_secret is not None and not self.turn_secret.strip():
            raise IceUrlError("the TURN secret is empty")

    @classmethod
    def from_urls(cls, urls: list[str] | tuple[str, ...], turn_secret: str | None = None,
                  ttl: int = DEFAULT_TTL_S) -> IceServers:
        return cls(tuple(parse_ice_url(u) for u in urls), turn_secret, ttl)

    def for_participant(self, participant_id: str, *, now: float | None = None
                        ) -> tuple[IceServer, ...]:
        """The list a participant gets in ``joined``: STUN URLs as they are, TURN URLs with
        fresh credentials for this participant."""
        stun = tuple(str(u) for u in self.urls if not u.is_turn)
        turn = tuple(str(u) for u in self.urls if u.is_turn)
        out: list[IceServer] = []
        if stun:
            out.append(IceServer(stun))
        if turn:
            username, credential, _ = turn_credentials(self.turn_secret, participant_id,
                                                       ttl=self.ttl, now=now)
            out.append(IceServer(turn, username, credential))
        return tuple(out)
