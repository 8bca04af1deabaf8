"""The deployment side of ICE: STUN/TURN URLs, TURN REST credentials, the announced public
address, the UDP port range, Opus FEC in the SDP, and the `haven serve` flags that set them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.ice import IcePolicy, candidate_addresses, candidate_ports
from media.sfu import opus_fec_negotiated, with_opus_fec
from media.turn import (
    IceServers,
    IceUrlError,
    check_turn_credential,
    parse_ice_url,
    turn_credentials,
)

from .conftest import ROOT

# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "scheme", "host", "port", "transport"), [
    ("stun:stun.example.org", "stun", "stun.example.org", 3478, "udp"),
    ("stun:198.19.0.20:3479", "stun", "198.19.0.20", 3479, "udp"),
    ("turn:turn.example.org", "turn", "turn.example.org", 3478, "udp"),
    ("turn:turn.example.org:443?transport=tcp", "turn", "turn.example.org", 443, "tcp"),
    ("turns:Turn.Example.org", "turns", "turn.example.org", 5349, "tcp"),
    ("turns:turn.example.org:443?transport=tcp", "turns", "turn.example.org", 443, "tcp"),
    ("turn:[2001:db8::1]:3478", "turn", "2001:db8::1", 3478, "udp"),
])
def test_ice_urls_parse(url, scheme, host, port, transport):
    u = parse_ice_url(url)
    assert (u.scheme, u.host, u.port, u.transport) == (scheme, host, port, transport)
    assert parse_ice_url(str(u)) == u  # the canonical form parses to the same thing


@pytest.mark.parametrize("url", [
    "http://turn.example.org", "turn:", "turn:host:0", "turn:host:70000", "stun:host?transport=tcp",
    "turn:host?transport=tls", "turns:host?transport=udp", "turn:user@host", "turn:ho st",
    "turn:host/path", "turn:[not-ipv6]", "turn:-bad-.example", "turn:" + "a" * 300,
])
def test_bad_ice_urls_are_refused_with_a_reason(url):
    with pytest.raises(IceUrlError) as err:
        parse_ice_url(url)
    assert str(err.value) and "\n" not in str(err.value)


@given(st.text(max_size=80))
def test_any_text_either_parses_or_is_refused_cleanly(text):
    try:
        u = parse_ice_url(text)
    except IceUrlError:
        return
    assert u.scheme in ("stun", "turn", "turns") and 1 <= u.port <= 65535
    assert parse_ice_url(str(u)) == u


# --- TURN REST credentials ----------------------------------------------------------------------


def test_turn_credential_matches_an_independent_hmac_sha1():
    # printf '%s' '1700003600:p-0123456789ab' | openssl dgst -sha1 -hmac north-sea-secret -binary | base64
    username, credential, expires = turn_credentials("north-sea-secret", "p-0123456789ab",
                                                     ttl=3600, now=1700000000)
    assert (username, credential, expires) == (
        "1700003600:p-0123456789ab", "Bk64F49fHFWBIuiVyNsff/qeGIU=", 1700003600)


@given(secret=st.text(min_size=1, max_size=40), user=st.from_regex(r"p-[0-9a-f]{12}", fullmatch=True),
       ttl=st.integers(60, 7 * 86400), now=st.integers(0, 2**33))
def test_turn_credentials_verify_until_they_expire(secret, user, ttl, now):
    username, credential, expires = turn_credentials(secret, user, ttl=ttl, now=now)
    assert expires == now + ttl and username.endswith(":" + user)
    assert check_turn_credential(secret, username, credential, now=now)
    assert check_turn_credential(secret, username, credential, now=expires)
    assert not check_turn_credential(secret, username, credential, now=expires + 1)
    assert not check_turn_credential(secret + "x", username, credential, now=now)
    assert not check_turn_credential(secret, f"{expires + 1}:{user}", credential, now=now)


def test_ice_servers_for_a_participant_and_what_they_hide():
    servers = IceServers.from_urls(
        ["stun:198.19.0.20", "turn:198.19.0.20?transport=tcp", "turns:turn.example.org"],
        "s3cret-shared", ttl=600)
    entries = servers.for_participant("p-0123456789ab", now=1000)
    assert [e.to_dict() for e in entries][0] == {"urls": ["stun:198.19.0.20:3478"]}
    turn = entries[1].to_dict()
    assert turn["urls"] == ["turn:198.19.0.20:3478?transport=tcp",
                            "turns:turn.example.org:5349?transport=tcp"]
    assert turn["username"] == "1600:p-0123456789ab"
    assert check_turn_credential("s3cret-shared", turn["username"], turn["credential"], now=1000)
    # neither the secret nor a credential shows in a repr (logs, tracebacks)
    assert "s3cret" not in repr(servers) and turn["credential"] not in repr(entries)


@pytest.mark.parametrize(("urls", "secret", "ttl", "says"), [
    (["turn:198.19.0.20"], None, 3600, "--turn-secret"),
    (["stun:198.19.0.20"], "  ", 3600, "empty"),
    (["stun:198.19.0.20"], None, 10, "lifetime"),
    (["stun:x.example"] * 9, None, 3600, "at most"),
])
def test_ice_server_settings_are_checked(urls, secret, ttl, says):
    with pytest.raises(IceUrlError, match=says):
        IceServers.from_urls(urls, secret, ttl)


# --- what the SFU announces ---------------------------------------------------------------------

ANSWER = (
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=candidate:a 1 udp 2130706431 198.18.2.10 40001 typ host\r\n"
    "a=candidate:b 1 udp 2130706431 127.0.0.1 40002 typ host\r\n"
    "a=candidate:c 1 udp 2130706431 198.18.9.10 40003 typ host\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10\r\n"
    "a=candidate:a 1 udp 2130706431 198.18.2.10 40001 typ host\r\n"
)


def test_public_address_is_announced_beside_every_real_host_candidate():
    sdp = IcePolicy.server(public_address="198.19.0.30").announce(ANSWER)
    sections = sdp.split("m=audio")[1:]
    for section in sections:  # every m-section lists the bundled candidates again
        srflx = [line for line in section.splitlines() if "typ srflx" in line]
        hosts = [line for line in section.splitlines() if "typ host" in line
                 and " 127.0.0.1 " not in line]
        assert len(srflx) == len(hosts)
        for line in srflx:
            parts = line.split()
            assert parts[4] == "198.19.0.30" and parts[6:8] == ["typ", "srflx"]
            assert parts[9] in ("198.18.2.10", "198.18.9.10") and parts[5] == parts[11]
    assert "127.0.0.1 40002 typ srflx" not in sdp and "198.19.0.30 40002" not in sdp
    # nothing else changes; without a public address nothing changes at all
    assert [li for li in sdp.splitlines() if "srflx" not in li] == ANSWER.splitlines()
    assert IcePolicy.server().announce(ANSWER) == ANSWER


def test_opus_fec_is_offered_and_answered():
    sdp = with_opus_fec(ANSWER)
    assert "a=fmtp:111 useinbandfec=1" in sdp.split("m=audio")[1]
    assert "a=fmtp:111 minptime=10;useinbandfec=1" in sdp.split("m=audio")[2]
    assert with_opus_fec(sdp) == sdp  # idempotent
    assert opus_fec_negotiated(sdp, "0") and opus_fec_negotiated(sdp, "1")
    assert not opus_fec_negotiated(ANSWER, "0")


async def test_gathering_keeps_to_the_port_range_and_includes_loopback():
    low = 42000 + os.getpid() % 1000 * 10
    policy = IcePolicy(host_addresses=("127.0.0.1",), port_range=(low, low + 9))
    pcs = [policy.new_peer_connection() for _ in range(3)]
    try:
        for pc in pcs:
            pc.addTransceiver("audio", direction="sendrecv")
            with policy.gathering():
                await pc.setLocalDescription(await pc.createOffer())
            ports = candidate_ports(pc.localDescription.sdp)
            assert ports and all(low <= p <= low + 9 for p in ports)
        assert len({candidate_ports(pc.localDescription.sdp)[0] for pc in pcs}) == 3
        # the server's default gathers on loopback too (a client on the same machine)
        server = IcePolicy.server()
        pc = server.new_peer_connection()
        pcs.append(pc)
        pc.addTransceiver("audio", direction="sendrecv")
        with server.gathering():
            await pc.setLocalDescription(await pc.createOffer())
        assert "127.0.0.1" in candidate_addresses(pc.localDescription.sdp)
    finally:
        for pc in pcs:
            await pc.close()


def test_client_policy_follows_the_join_url():
    assert IcePolicy.client("127.0.0.1").loopback_only
    assert IcePolicy.client("localhost").loopback_only
    remote = IcePolicy.client("haven.example.org")
    assert not remote.loopback_only and not remote.include_loopback


# --- haven serve flags -------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "says"), [
    (["--udp-port-range", "40000"], "--udp-port-range must look like 40000-40199"),
    (["--udp-port-range", "50000-40000"], "--udp-port-range must lie within 1024-65535"),
    (["--udp-port-range", "80-90"], "--udp-port-range must lie within 1024-65535"),
    (["--public-address", "haven.example.org"], "--public-address must be an IPv4 address"),
    (["--public-address", "127.0.0.1"], "--public-address must be a unicast IPv4 address"),
    (["--ice-server", "http://turn.example.org"], "not a stun:, turn: or turns: URL"),
    (["--ice-server", "turn:turn.example.org"], "need --turn-secret"),
    (["--ice-server", "stun:stun.example.org", "--turn-ttl", "soon"], "--turn-ttl must be"),
    (["--turn-secret", "x", "--turn-ttl", "5"], "lifetime"),
])
def test_bad_serve_flags_exit_with_one_clear_line(tmp_path, capsys, args, says):
    from web.cli import main

    assert main(["serve", "--data-dir", str(tmp_path / "d"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("haven: error: ") and says in lines[0], lines
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_bad_serve_flag_from_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "web.cli", "serve", "--data-dir",
                        str(tmp_path / "d"), "--udp-port-range", "x-y"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "haven: error: --udp-port-range must look like 40000-40199, not 'x-y'"]


def test_turn_secret_never_reaches_a_repr():
    from web.cli import parse_ice_servers
    from web.config import Config

    config = Config(ice_servers=parse_ice_servers(["turn:turn.example.org"], "hush-hush", "3600"))
    assert "hush-hush" not in repr(config)
