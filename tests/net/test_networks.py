"""Voice across simulated real networks (tests/net/lab.py): a client behind a home NAT, a
client whose network drops all UDP (only TURN over TCP or TLS gets through), a server
behind 1:1 NAT, and a client whose address changes mid-call. Every client is the real
``haven call`` (or tests/net/agent.py: the same client with a report), every server the real
``haven serve``, the relay Debian's coturn. Audio is checked in the recordings, by spectrum.

Each feature's test has a twin without the feature that must fail: no TURN, no
``--public-address``.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest

from tests.net.services import (
    call,
    finish,
    load_stats,
    start_coturn,
    start_haven,
    summary,
    wait_until,
)
from tests.voice_support import band_share, read_wav, rms, syllables, write_wav

pytestmark = [pytest.mark.net, pytest.mark.slow]

TONES = {"near": 600.0, "far": 1500.0}
CALL_S = 7.0


@pytest.fixture(scope="module")
def net(world, tmp_path_factory):
    """coturn on the public side; Haven servers as an operator would start them:
    pub:8080   TURN over UDP, TCP and TLS handed out, with the shared secret
    pub:8081   only turns: (TLS) handed out
    pub:8082   no ICE servers at all (the "TURN off" control)
    cloud:8080 behind 1:1 NAT with --public-address; cloud:8081 the same without it."""
    tmp = tmp_path_factory.mktemp("net")
    turn = start_coturn(world.relay, world.RELAY, tmp / "coturn")
    secret = ("--turn-secret", turn.secret)
    specs = {
        "turn": (world.pub, 8080, world.PUB,
                 (*_servers(turn.urls("udp", "tcp", "tls")), *secret)),
        "turns": (world.pub, 8081, world.PUB, (*_servers(turn.urls("tls")), *secret)),
        "plain": (world.pub, 8082, world.PUB, ()),
        "nat1to1": (world.cloud, 8080, world.CLOUD_PUBLIC,
                    ("--public-address", world.CLOUD_PUBLIC, "--udp-port-range", "40000-40099",
                     # aioice logs the candidate pairs it checks (the ports asserted below)
                     "--log-level-for", "aioice=INFO")),
        "nat1to1-unannounced": (world.cloud, 8081, world.CLOUD_PUBLIC, ()),
    }
    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        futures = {name: pool.submit(start_haven, ns, tmp / name, port=port,
                                     base_url=f"http://{host}:{port}", args=args)
                   for name, (ns, port, host, args) in specs.items()}
        servers = {name: f.result() for name, f in futures.items()}
    wavs = {k: write_wav(tmp / f"{k}-says.wav", syllables(f, CALL_S + 8)) for k, f in TONES.items()}
    return {"tmp": tmp, "turn": turn, "servers": servers, "wavs": wavs,
            "env": {"SSL_CERT_FILE": str(turn.ca)}}


def _servers(urls):
    return [a for u in urls for a in ("--ice-server", u)]


def two_party_call(net, server: str, near_ns, far_ns, room: str, *, agent: bool = False,
                   seconds: float = CALL_S, during=None):
    """`near` and `far` call each other through ``server``; returns what each heard."""
    folder = net["tmp"] / room
    folder.mkdir()
    urls = net["servers"][server].invite(room, 2)
    procs = {
        "near": call(near_ns, urls[0], folder, "near", send=net["wavs"]["near"], seconds=seconds,
                     env=net["env"], agent=agent),
        "far": call(far_ns, urls[1], folder, "far", send=net["wavs"]["far"], seconds=seconds,
                    env=net["env"], agent=agent),
    }
    if during is not None:
        during(folder)
    results = {}
    for name, proc in procs.items():
        rc, out, err = finish(proc)
        assert rc == 0, f"{name}: {err[-2000:]}"
        sent, received, failed = summary(out)
        pcm = read_wav(folder / f"{name}.wav")
        results[name] = {"sent": sent, "received": received, "failed": failed, "pcm": pcm,
                         "out": out, "err": err,
                         "stats": load_stats(folder / f"{name}.json") if agent else None}
    return results


def hears(result: dict, other: str) -> float:
    return band_share(result["pcm"], TONES[other])


def assert_both_hear(results) -> None:
    for me, other in (("near", "far"), ("far", "near")):
        r = results[me]
        assert r["received"] > 100 and r["failed"] == 0, (me, r["out"], r["err"][-1500:])
        assert hears(r, other) > 0.3, (me, hears(r, other))
        assert hears(r, me) < 0.02  # never your own voice back


def assert_near_is_cut_off(results) -> None:
    near, far = results["near"], results["far"]
    assert near["received"] == 0, near["out"]
    assert rms(near["pcm"]) == 0.0
    assert hears(far, "near") < 0.02


# --- case 1: a client behind a home router's NAT ------------------------------------------------

def test_client_behind_nat_talks_to_a_public_server(net, world):
    results = two_party_call(net, "plain", world.home, world.cafe, "case1")
    assert_both_hear(results)


# --- case 2: a network that drops all UDP: only TURN over TCP or TLS gets through -------------------

@pytest.mark.parametrize(("server", "transport"), [("turn", "TCP"), ("turns", "TLS/TCP")])
def test_udp_blocked_client_gets_through_coturn(net, world, server, transport):
    results = two_party_call(net, server, world.corp, world.cafe, f"case2-{server}", agent=True)
    assert_both_hear(results)
    near = results["near"]["stats"]
    pid = near["participant_id"]
    turn = net["turn"]

    def relayed():
        return [s for s in turn.relayed() if s["username"].endswith(":" + pid)]

    wait_until(lambda: any(s["received"] > 100 for s in relayed()), timeout=15,
               what="coturn's usage report for the firewalled client")
    used = [s for s in relayed() if s["received"] > 100]
    assert used and {s["client"] for s in used} == {"198.19.0.3"}  # corp's router
    assert {s["transport"] for s in used} == {transport}
    # the credential was the short-lived TURN REST one: "<expiry>:<participant>", expiring
    # about an hour from now
    expiry = int(used[0]["username"].split(":")[0])
    assert 3300 < expiry - time.time() < 3700


def test_udp_blocked_client_without_turn_hears_nothing(net, world):
    results = two_party_call(net, "plain", world.corp, world.cafe, "case2-off", seconds=5)
    assert_near_is_cut_off(results)


# --- case 3: the server behind a cloud provider's 1:1 NAT -----------------------------------------

def test_server_behind_one_to_one_nat_with_public_address(net, world):
    results = two_party_call(net, "nat1to1", world.home, world.cafe, "case3")
    assert_both_hear(results)
    ports = [int(p) for p in _candidate_ports(net["servers"]["nat1to1"].log_text())]
    assert ports and all(40000 <= p <= 40099 for p in ports)


def test_server_behind_one_to_one_nat_without_public_address_cuts_the_nat_client_off(net, world):
    results = two_party_call(net, "nat1to1-unannounced", world.home, world.cafe, "case3-off",
                             seconds=5)
    assert_near_is_cut_off(results)


def _candidate_ports(log: str) -> list[str]:
    import re

    return re.findall(r"CandidatePair\(\('198\.18\.2\.10', (\d+)\)", log)


# --- case 4: the client's address changes mid-call -------------------------------------------------

def test_address_change_mid_call_recovers_without_leaving_or_rekeying(net, world):
    moved_at = {}

    def move(folder):
        for name in ("near", "far"):  # both hear each other: now the network changes
            wait_until(lambda n=name: (folder / f"{n}.json.audio").exists(), timeout=40,
                       what=f"audio at {name}")
        time.sleep(1.5)
        moved_at["t"] = time.monotonic()
        world.move_home()

    try:
        results = two_party_call(net, "plain", world.home, world.cafe, "case4", agent=True,
                                 seconds=18, during=move)
    finally:
        world.move_back_home()
    near, far = results["near"]["stats"], results["far"]["stats"]
    assert_both_hear(results)
    # the moving client noticed, came back in its own place, kept its keys
    assert len(near["recoveries"]) == 1, near["recoveries"]
    rec = near["recoveries"][0]
    assert rec["resumed"] is True and rec["audio_at"] is not None
    assert near["generation_before_any_leave"] == near["generation_at_start"] == 0
    assert near["messages"]["joined"] == 2  # the first join, and the resume
    # the other side never saw it leave (until the end of the call), so it never re-keyed
    assert far["messages"].get("member_joined", 0) <= 1  # only if near joined after it
    assert far["generation_before_any_leave"] == far["generation_at_start"] == 0
    assert far["messages"].get("member_left", 0) <= 1  # near hanging up at the end
    # audio came back: the last seconds of each recording carry the other's voice
    for me, other in (("near", "far"), ("far", "near")):
        tail = results[me]["pcm"][-48000 * 4:]
        assert band_share(tail, TONES[other]) > 0.3, (me, band_share(tail, TONES[other]))
    assert rec["audio_at"] - moved_at["t"] < 15


# --- loss: random drop in the client's network, FEC and concealment ---------------------------------

def test_random_loss_is_recovered_by_fec_and_the_recording_stays_continuous(net, world):
    world.drop_incoming_udp(world.home, 10)
    try:
        results = two_party_call(net, "plain", world.home, world.cafe, "loss", agent=True)
    finally:
        world.drop_incoming_udp(world.home, 0)
    near = results["near"]["stats"]["receive"]
    assert near["recovered"] > 5, near  # single losses rebuilt from the next packet's FEC
    lost = near["recovered"] + near["concealed"]
    assert 0.03 < lost / near["frames"] < 0.2, near
    pcm = results["near"]["pcm"]
    # continuous: no silent hole longer than 60 ms once the voice started
    start = next(i for i in range(0, len(pcm), 960) if rms(pcm[i:i + 960]) > 300)
    frames = [rms(pcm[i:i + 960]) for i in range(start, len(pcm) - 48000, 960)]
    holes = [j for j in range(len(frames) - 2) if max(frames[j:j + 3]) < 50]
    assert not holes, holes[:10]
    assert band_share(pcm, TONES["far"]) > 0.3


# --- a browser behind the UDP-blocking firewall: the page uses the TURN servers from `joined` ----

@pytest.mark.browser
def test_browser_behind_udp_firewall_talks_through_turn_from_joined(net, world):
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import CHROMIUM
    from tests.net.browser import SessionTab, launch_in

    if not Path(CHROMIUM).exists():
        pytest.skip("no system Chromium at /usr/bin/chromium")
    folder = net["tmp"] / "case2-browser"
    folder.mkdir()
    urls = net["servers"]["turn"].invite("case2-browser", 2)
    with sync_playwright() as p:
        browser = launch_in(p, world.corp, folder, net["wavs"]["near"],
                            origin=net["servers"]["turn"].base_url)
        tab = None
        try:
            tab = SessionTab(browser, urls[0])
            tab.join("Corp")
            far = call(world.cafe, urls[1], folder, "far", send=net["wavs"]["far"], seconds=12,
                       env=net["env"])
            wait_until(lambda: tab.people() == 2, timeout=60, what="2 people")
            wait_until(lambda: tab.voices_heard() == 1, timeout=45, what="the page hearing far")
            pair = tab.selected_pair()
            configs = tab.ice_configs()
            rc, out, err = finish(far)
            errors = tab.errors
        finally:
            if tab is not None:
                tab.close()
            browser.close()
    assert rc == 0, err
    assert band_share(read_wav(folder / "far.wav"), TONES["near"]) > 0.3
    # the page got the TURN servers, with a credential, from `joined` ...
    servers = configs[-1]["iceServers"]
    turn = [s for s in servers if s["urls"][0].startswith("turn")]
    assert turn and turn[0]["username"] and turn[0]["credential"]
    assert set(turn[0]["urls"]) == set(net["turn"].urls("udp", "tcp", "tls"))
    # ... and its media went through coturn over TCP (UDP is dropped in this network)
    assert pair["local"] == "relay" and pair["relayProtocol"] in ("tcp", "tls"), pair
    assert not errors, errors
