"""A network namespace of the test's own, with one veth pair carrying an address from
198.18.0.0/15 (the benchmarking range), so browsers and the server meet on a real interface
with Haven's default ICE (no loopback-only flags) and no traffic leaves the namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def available() -> str | None:
    """Why a namespace cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    return None


class Namespace:
    def __init__(self, name: str, address: str = "198.18.14.1"):
        self.name = name
        self.address = address
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            for cmd in ("ip link set lo up",
                        "ip link add hv0 type veth peer name hv1",
                        f"ip addr add {address}/24 dev hv0",
                        "ip link set hv0 up", "ip link set hv1 up"):
                subprocess.run(["ip", "netns", "exec", name, *cmd.split()], check=True,
                               capture_output=True)
        except subprocess.CalledProcessError:
            self.remove()
            raise

    def prefix(self) -> list[str]:
        """Put in front of a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def wrapper(self, folder: Path, binary: str) -> Path:
        """An executable that runs ``binary`` inside the namespace (for Playwright's
        executable_path, which cannot take a prefix)."""
        path = folder / f"in-{self.name}-{Path(binary).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {binary} "$@"\n')
        path.chmod(0o755)
        return path

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
