"""Service configuration: one value object built by the CLI (or tests) and handed to create_app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from media.turn import IceServers
from therapy.accounts import DEFAULT_COST, ScryptCost


@dataclass
class Config:
    data_dir: Path = Path("./haven-data")
    key_file: Path | None = None  # default: <data_dir>/master.key
    host: str = "127.0.0.1"
    port: int = 8080
    demo: bool = False
    # Anyone may sign up as a patient; a clinic can make sign-up invitation-only.
    open_signup: bool = True
    # Set when served over HTTPS (behind a TLS proxy): adds Secure to cookies.
    secure_cookies: bool = False
    # The public address, when the service sits behind a proxy (used in links and Origin checks).
    public_base_url: str | None = None
    scrypt_cost: ScryptCost = field(default_factory=lambda: DEFAULT_COST)
    # Login throttling (web.ratelimit): failures within the window from addresses that never
    # logged in to an account before it makes them wait; failures from one address over all
    # accounts before that address waits. Never a lockout of a known-good address.
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    login_window_seconds: float = 15 * 60
    max_json_bytes: int = 64 * 1024
    # ICE for the SFU: restrict candidates to loopback (tests, benchmarks, single-host demos).
    ice_loopback_only: bool = False
    # The address announced in ICE candidates when the server sits behind 1:1 NAT.
    public_address: str | None = None
    # (low, high): the UDP ports media may use, so a firewall can open a known range.
    udp_port_range: tuple[int, int] | None = None
    # STUN/TURN servers handed to participants, with the TURN REST secret (never in repr).
    ice_servers: IceServers = field(default_factory=IceServers)
    # An operator's crisis-lines file (groups.crisis format) replacing or extending the
    # shipped one; <data_dir>/crisis_lines.json is applied first when present.
    crisis_lines_file: Path | None = None
    # A group meeting with no facilitator present ends gently after this many seconds.
    group_facilitator_grace_s: float = 120.0

    def __post_init__(self):
        self.data_dir = Path(self.data_dir)
        if self.key_file is not None:
            self.key_file = Path(self.key_file)

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
