"""A network laboratory made of Linux network namespaces: routers with NAT and firewalls
(nftables), veth cables and a bridge for "the internet", all with addresses from the
benchmarking range 198.18.0.0/15 only. Used by tests/net/ and bench/net_bench.py.

Everything is named ``hvn<pid>x<random>-<role>``, so parallel runs never collide, and is
removed by ``Lab.close()`` (also on failure: use it as a context manager or a fixture).
Namespaces left behind by a run that was killed are removed by the next run (their pid is
gone). Needs root; ``unavailable()`` says why a machine cannot run it.

    with Lab() as lab:
        world = build_world(lab)
        world.home.popen([...])        # a process inside the home network
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PREFIX = "hvn"
_NAME = re.compile(rf"^{PREFIX}(\d+)x[0-9a-f]+-")


def _run(argv: list[str], *, check: bool = True, timeout: float = 20,
         input: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def unavailable() -> str | None:
    """Why this machine cannot build a lab (None: it can)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns, nftables)"
    for tool in ("ip", "nft", "ss"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (scripts/setup.sh --test installs it)"
    probe = f"{PREFIX}{os.getpid()}x0000-probe"
    r = _run(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    try:
        r = _run(["ip", "netns", "exec", probe, "nft", "list", "ruleset"], check=False)
        if r.returncode != 0:
            return f"nftables does not work in a namespace: {r.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def sweep_stale() -> None:
    """Remove namespaces of earlier runs whose process is gone."""
    r = _run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _kill_ns_processes(name)
            _run(["ip", "netns", "del", name], check=False)


def _kill_ns_processes(name: str) -> None:
    r = _run(["ip", "netns", "pids", name], check=False)
    for pid in r.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class Netns:
    def __init__(self, lab: Lab, role: str) -> None:
        self.lab = lab
        self.role = role
        self.name = f"{lab.tag}-{role}"
        _run(["ip", "netns", "add", self.name])
        self.run("ip", "link", "set", "lo", "up")

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 20,
            input: str | None = None) -> subprocess.CompletedProcess:
        return _run(self.argv(*argv), check=check, timeout=timeout, input=input)

    def popen(self, argv: list[str], *, env: dict | None = None, log: Path | None = None,
              **kw) -> subprocess.Popen:
        """Start a process inside this namespace; the lab stops it on close."""
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        if log is not None:
            with open(log, "w") as out:  # the child keeps its own copy
                proc = subprocess.Popen(self.argv(*argv), env=full_env, cwd=kw.pop("cwd", ROOT),
                                        stdout=out, stderr=subprocess.STDOUT, **kw)
        else:
            kw.setdefault("stdout", subprocess.PIPE)
            kw.setdefault("stderr", subprocess.PIPE)
            kw.setdefault("text", True)
            proc = subprocess.Popen(self.argv(*argv), env=full_env, cwd=kw.pop("cwd", ROOT), **kw)
        self.lab.processes.append(proc)
        return proc

    def nft(self, ruleset: str) -> None:
        self.run("nft", "-f", "-", input=ruleset)

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def addresses(self) -> list[str]:
        out = self.run("ip", "-4", "-o", "addr", "show").stdout
        return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out)

    def listening(self, port: int, proto: str = "tcp") -> bool:
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        return bool(self.run("ss", flag, f"sport = :{port}", check=False).stdout.strip())

    def wait_listening(self, port: int, proc: subprocess.Popen | None = None,
                       timeout: float = 150, proto: str = "tcp", what: str = "server") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{what} in {self.role} exited early ({proc.returncode})")
            if self.listening(port, proto):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} in {self.role} did not listen on {port}")


class Lab:
    def __init__(self) -> None:
        sweep_stale()
        self.tag = f"{PREFIX}{os.getpid()}x{secrets.token_hex(2)}"
        self.namespaces: list[Netns] = []
        self.processes: list[subprocess.Popen] = []

    def netns(self, role: str) -> Netns:
        taken = {n.role for n in self.namespaces}
        base, k = role, 1
        while role in taken:
            k += 1
            role = f"{base}{k}"
        ns = Netns(self, role)
        self.namespaces.append(ns)
        return ns

    def cable(self, a: Netns, a_if: str, a_addr: str | None,
              b: Netns, b_if: str, b_addr: str | None = None) -> None:
        """A veth pair between two namespaces, with an address (CIDR) on either end."""
        _run(["ip", "link", "add", "name", a_if, "netns", a.name, "type", "veth",
              "peer", "name", b_if, "netns", b.name])
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            if addr:
                ns.run("ip", "addr", "add", addr, "dev", ifname)
            ns.run("ip", "link", "set", ifname, "up")

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
        self.processes.clear()
        for ns in reversed(self.namespaces):
            _kill_ns_processes(ns.name)
            _run(["ip", "netns", "del", ns.name], check=False)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def one_machine(lab: Lab, *, interface: bool = True) -> Netns:
    """A namespace like a fresh laptop or CI machine: loopback, and (``interface``) one
    network card, 198.18.7.2/24 with a default route to an uplink that goes nowhere (a
    browser gathers candidates only on a machine with a default route)."""
    machine = lab.netns("machine")
    if interface:
        uplink = lab.netns("uplink")
        lab.cable(machine, "eth0", "198.18.7.2/24", uplink, "eth0", "198.18.7.1/24")
        machine.run("ip", "route", "add", "default", "via", "198.18.7.1")
    return machine


# --- the world the tests and the benchmark use ----------------------------------------------
#
#               "the internet": bridge in ns wan, 198.19.0.0/24 (no route to any LAN)
#     +-----------+-----------+-----------+--------------+---------------+----------------+
#   pub .10     relay .20   cafe .40    homer .2       corpr .3        cloudr .4 (+ .30 = 1:1 NAT)
#   (server)    (coturn)    (a client   |
#                            without NAT)
#   (server)    (coturn)    masquerade     masquerade,     dnat .30 -> 198.18.2.10
#                           |              drops all UDP   |
#                         home 198.18.1.10   corp 198.18.3.10   cloud 198.18.2.10 (server)

PUBLIC_NET = "198.19.0"


@dataclass
class World:
    lab: Lab
    wan: Netns
    pub: Netns
    relay: Netns
    cafe: Netns
    homer: Netns
    home: Netns
    corpr: Netns
    corp: Netns
    cloudr: Netns
    cloud: Netns

    PUB = f"{PUBLIC_NET}.10"
    RELAY = f"{PUBLIC_NET}.20"
    CAFE = f"{PUBLIC_NET}.40"
    CLOUD_PUBLIC = f"{PUBLIC_NET}.30"
    HOME = "198.18.1.10"
    HOME_MOVED = "198.18.1.11"
    CORP = "198.18.3.10"
    CLOUD = "198.18.2.10"

    def move_home(self) -> None:
        """The home client's address changes (a new DHCP lease, another Wi-Fi)."""
        self.home.run("ip", "addr", "add", f"{self.HOME_MOVED}/24", "dev", "eth0")
        self.home.run("ip", "addr", "del", f"{self.HOME}/24", "dev", "eth0")
        self.home.run("ip", "route", "replace", "default", "via", "198.18.1.1")

    def move_back_home(self) -> None:
        if self.HOME in self.home.addresses():
            return
        self.home.run("ip", "addr", "add", f"{self.HOME}/24", "dev", "eth0")
        self.home.run("ip", "addr", "del", f"{self.HOME_MOVED}/24", "dev", "eth0", check=False)
        self.home.run("ip", "route", "replace", "default", "via", "198.18.1.1")

    def drop_incoming_udp(self, ns: Netns, percent: int) -> None:
        """Random loss on everything UDP arriving in ``ns`` (replaces earlier loss)."""
        ns.run("nft", "delete", "table", "inet", "loss", check=False)
        if percent > 0:
            ns.nft(f"""table inet loss {{
  chain input {{
    type filter hook input priority 0; policy accept;
    meta l4proto udp numgen random mod 100 < {int(percent)} drop
  }}
}}""")


def build_world(lab: Lab) -> World:
    wan = lab.netns("wan")
    wan.run("ip", "link", "add", "br0", "type", "bridge")
    wan.run("ip", "link", "set", "br0", "up")

    def on_internet(ns: Netns, ifname: str, *addrs: str) -> None:
        port = f"p-{ns.role}"[:15]
        lab.cable(ns, ifname, f"{addrs[0]}/24", wan, port)
        wan.run("ip", "link", "set", port, "master", "br0")
        for extra in addrs[1:]:
            ns.run("ip", "addr", "add", f"{extra}/24", "dev", ifname)

    names = {}
    for role in ("pub", "relay", "cafe", "homer", "home", "corpr", "corp", "cloudr", "cloud"):
        names[role] = lab.netns(role)
    on_internet(names["pub"], "eth0", World.PUB)
    on_internet(names["relay"], "eth0", World.RELAY)
    on_internet(names["cafe"], "eth0", World.CAFE)

    def router(r: Netns, client: Netns, wan_addrs: tuple[str, ...], lan: str, host: str,
               rules: str) -> None:
        on_internet(r, "wan0", *wan_addrs)
        lab.cable(r, "lan0", f"{lan}.1/24", client, "eth0", f"{host}/24")
        client.run("ip", "route", "add", "default", "via", f"{lan}.1")
        client.sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")
        r.sysctl("net.ipv4.ip_forward", "1")
        r.nft(rules)

    router(names["homer"], names["home"], (f"{PUBLIC_NET}.2",), "198.18.1", World.HOME, """
table ip nat {
  chain postrouting { type nat hook postrouting priority 100; oifname "wan0" masquerade; }
}""")
    router(names["corpr"], names["corp"], (f"{PUBLIC_NET}.3",), "198.18.3", World.CORP, """
table ip nat {
  chain postrouting { type nat hook postrouting priority 100; oifname "wan0" masquerade; }
}
table inet firewall {
  chain forward {
    type filter hook forward priority 0; policy accept;
    meta l4proto udp counter drop
  }
}""")
    router(names["cloudr"], names["cloud"], (f"{PUBLIC_NET}.4", World.CLOUD_PUBLIC), "198.18.2",
           World.CLOUD, f"""
table ip nat {{
  chain prerouting {{ type nat hook prerouting priority -100;
    ip daddr {World.CLOUD_PUBLIC} dnat to {World.CLOUD}; }}
  chain postrouting {{ type nat hook postrouting priority 100;
    ip saddr {World.CLOUD} oifname "wan0" snat to {World.CLOUD_PUBLIC}; }}
}}""")
    return World(lab, wan, **names)
