"""The real programs of a network test, each inside a namespace of the lab: ``haven serve``
and ``haven call`` as users run them, Debian's coturn with a test certificate, and the
system Chromium (driven by Playwright through a wrapper that enters the namespace)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .lab import ROOT, Netns, _run

HAVEN = [sys.executable, "-m", "web.cli"]


@dataclass
class HavenServer:
    ns: Netns
    base_url: str
    data_dir: Path
    log: Path
    proc: object

    def invite(self, room: str, count: int) -> list[str]:
        r = _run([*HAVEN, "invite", "--data-dir", str(self.data_dir), "--room", room,
                  "--count", str(count), "--base-url", self.base_url], timeout=60)
        return r.stdout.split()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_haven(ns: Netns, folder: Path, *, port: int, base_url: str,
                args: tuple[str, ...] = (), demo: bool = False) -> HavenServer:
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / "data"
    log = folder / "server.log"
    proc = ns.popen([*HAVEN, "serve", "--host", "0.0.0.0", "--port", str(port),
                     "--data-dir", str(data_dir), *(["--demo"] if demo else []), *args], log=log)
    ns.wait_listening(port, proc, what="haven serve")
    # `haven invite` reads the base URL the server recorded; tests pass it explicitly.
    return HavenServer(ns, base_url, data_dir, log, proc)


def call(ns: Netns, url: str, folder: Path, name: str, *, send: Path, seconds: float,
         env: dict | None = None, agent: bool = False, extra: tuple[str, ...] = ()):
    """``haven call`` (or tests/net/agent.py with the same arguments plus --stats) inside
    ``ns``; returns the process. Recording: folder/<name>.wav, stats: folder/<name>.json."""
    argv = ([sys.executable, "-m", "tests.net.agent"] if agent else [*HAVEN, "call"])
    argv += [url, "--send", str(send), "--record", str(folder / f"{name}.wav"),
             "--seconds", str(seconds), "--identity", str(folder / f"{name}-id.json"), *extra]
    if agent:
        argv += ["--stats", str(folder / f"{name}.json")]
    return ns.popen(argv, env=env)


def finish(proc, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


SUMMARY = re.compile(r"frames sent (\d+), received (\d+), failed to decrypt (\d+)")


def summary(out: str) -> tuple[int, int, int]:
    m = SUMMARY.search(out)
    if not m:
        raise AssertionError(f"no summary line in: {out!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def load_stats(path: Path) -> dict:
    return json.loads(path.read_text())


# --- coturn ---------------------------------------------------------------------------------

def make_test_ca(folder: Path, ip: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``ip`` (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Haven test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "turn-cert.pem", folder / "turn-key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@dataclass
class Coturn:
    ns: Netns
    ip: str
    secret: str
    ca: Path
    log: Path
    proc: object
    port: int = 3478
    tls_port: int = 5349

    def urls(self, *kinds: str) -> list[str]:
        table = {"udp": f"turn:{self.ip}:{self.port}",
                 "tcp": f"turn:{self.ip}:{self.port}?transport=tcp",
                 "tls": f"turns:{self.ip}:{self.tls_port}?transport=tcp",
                 "stun": f"stun:{self.ip}:{self.port}"}
        return [table[k] for k in kinds]

    def relayed(self) -> list[dict]:
        """Every closed TURN session that relayed media, from coturn's log: the client's
        address, the transport (TCP or TLS/TCP or UDP), the TURN username, packets relayed."""
        remote: dict[str, tuple[str, str]] = {}
        out = []
        for line in self.log_text().splitlines():
            m = re.search(r"session (\d+): (?:closed.*?remote ([\d.]+):\d+, reason: (\S+)|"
                          r"(?:TCP|TLS/TCP) socket closed remotely ([\d.]+))", line)
            if m and m.group(2):
                remote.setdefault(m.group(1), (m.group(2), m.group(3)))
            elif m and m.group(4):
                kind = "TLS/TCP" if "TLS/TCP" in line else "TCP"
                remote[m.group(1)] = (m.group(4), kind)
            u = re.search(r"session (\d+): peer usage: realm=<[^>]*>, username=<([^>]*)>, "
                          r"rp=(\d+), rb=\d+, sp=(\d+)", line)
            if u:
                out.append({"session": u.group(1), "username": u.group(2),
                            "received": int(u.group(3)), "sent": int(u.group(4))})
        for item in out:
            addr, kind = remote.get(item["session"], ("?", "?"))
            item["client"], item["transport"] = addr, kind if kind in ("TCP", "TLS/TCP") else "UDP"
        return out

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_coturn(ns: Netns, ip: str, folder: Path) -> Coturn:
    folder.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_test_ca(folder, ip)
    secret = secrets.token_urlsafe(24)
    log = folder / "coturn.log"
    proc = ns.popen([
        "turnserver", "-n", "--no-cli", "-v", "--log-file", str(log), "--simple-log",
        "--listening-ip", ip, "--relay-ip", ip, "--external-ip", ip,
        "--listening-port", "3478", "--tls-listening-port", "5349",
        "--cert", str(cert), "--pkey", str(key),
        "--use-auth-secret", f"--static-auth-secret={secret}", "--realm", "haven.test",
        "--fingerprint", "--no-multicast-peers", "--no-dtls",
        "--allowed-peer-ip=198.18.0.0-198.19.255.255",
        "--min-port", "49152", "--max-port", "49999",
        "--pidfile", str(folder / "turnserver.pid"),
    ], log=folder / "coturn.out")
    ns.wait_listening(3478, proc, what="coturn")
    ns.wait_listening(5349, proc, what="coturn (TLS)")
    return Coturn(ns, ip, secret, ca, log, proc)


# --- Chromium inside a namespace ---------------------------------------------------------------

def chromium_wrapper(ns: Netns, folder: Path) -> Path:
    """An executable Playwright can launch: the system Chromium, inside ``ns``. Playwright
    talks to it over inherited pipes, which ``ip netns exec`` keeps."""
    from tests.browser.chromium import CHROMIUM

    path = folder / f"chromium-{ns.role}"
    path.write_text(f"#!/bin/sh\nexec ip netns exec {ns.name} {CHROMIUM} \"$@\"\n")
    path.chmod(0o755)
    return path


def wait_until(predicate, timeout: float = 30.0, step: float = 0.25, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s")


__all__ = ["ROOT", "HavenServer", "start_haven", "call", "finish", "summary", "start_coturn",
           "Coturn", "chromium_wrapper", "wait_until", "load_stats"]
